"""Token selection on numpy logits, for the onnxruntime runner: same rules as the hf sampler.

Each sampling sequence gets its own ``numpy.random.Generator`` seeded from the request, so sampling is
reproducible per request whatever else shares the batch.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from backends.inproc.sequence import Sequence

Logits = npt.NDArray[np.floating]


class NumpySampler:
    def __init__(self) -> None:
        self._rngs: dict[int, np.random.Generator] = {}

    def forget(self, seq: Sequence) -> None:
        self._rngs.pop(id(seq), None)

    def sample(self, logits: Logits, seqs: list[Sequence]) -> list[int]:
        """``logits``: [rows, vocab] for ``seqs`` in order (modified in place)."""
        for row, seq in enumerate(seqs):
            if seq.eos_ids and not seq.eos_allowed():
                logits[row, sorted(seq.eos_ids)] = -np.inf
        chosen = [int(t) for t in np.argmax(logits, axis=-1)]
        for row, seq in enumerate(seqs):
            if not seq.sampling.greedy:
                chosen[row] = self._sample_row(logits[row].astype(np.float64), seq)
        return chosen

    def _sample_row(self, row: npt.NDArray[np.float64], seq: Sequence) -> int:
        p = seq.sampling
        rng = self._rngs.get(id(seq))
        if rng is None:
            rng = self._rngs[id(seq)] = np.random.default_rng(p.seed)
        row = row / p.temperature
        if p.top_k > 0 and p.top_k < row.size:
            kth = np.partition(row, -p.top_k)[-p.top_k]
            row = np.where(row < kth, -np.inf, row)
        probs = np.exp(row - row.max())
        probs /= probs.sum()
        if p.top_p < 1.0:
            order = np.argsort(-probs, kind="stable")
            sorted_probs = probs[order]
            # Keep the smallest prefix whose mass reaches top_p (always at least the top token).
            drop = np.cumsum(sorted_probs) - sorted_probs >= p.top_p
            probs[order[drop]] = 0.0
            probs /= probs.sum()
        return int(rng.choice(probs.size, p=probs))
