"""Token selection for a decode step: greedy rows in one argmax, sampled rows each with their own generator.

A per-sequence ``torch.Generator`` seeded from the request's ``seed`` makes sampling reproducible per request,
whatever else shares the batch.
"""

from __future__ import annotations

import torch

from backends.inproc.sequence import SamplingParams, Sequence


class Sampler:
    def __init__(self, device: torch.device) -> None:
        self._device = device
        self._generators: dict[int, torch.Generator] = {}

    def forget(self, seq: Sequence) -> None:
        self._generators.pop(id(seq), None)

    def sample(self, logits: torch.Tensor, seqs: list[Sequence]) -> list[int]:
        """``logits``: [rows, vocab] float tensor for ``seqs`` in order.

        Whole-batch tensor ops only, except for rows that sample: every per-row op on a GPU tensor is a kernel
        launch (and a host copy is a sync), which at batch 128 costs more than the step itself.
        """
        suppress = [i for i, s in enumerate(seqs) if s.eos_ids and not s.eos_allowed()]
        if suppress:
            eos = sorted(set().union(*(seqs[i].eos_ids for i in suppress)))
            rows = torch.tensor(suppress, device=logits.device)
            cols = torch.tensor(eos, device=logits.device)
            logits[rows[:, None], cols[None, :]] = float("-inf")
        chosen = torch.argmax(logits, dim=-1).tolist()
        for row, seq in enumerate(seqs):
            if not seq.sampling.greedy:
                chosen[row] = self._sample_row(logits[row].float(), seq)
        return [int(t) for t in chosen]

    def _sample_row(self, row: torch.Tensor, seq: Sequence) -> int:
        p: SamplingParams = seq.sampling
        gen = self._generators.get(id(seq))
        if gen is None:
            gen = torch.Generator(device=self._device)
            if p.seed is None:
                gen.seed()
            else:
                gen.manual_seed(p.seed)
            self._generators[id(seq)] = gen
        row = row / p.temperature
        if p.top_k > 0:
            kth = torch.topk(row, min(p.top_k, row.numel())).values[-1]
            row = row.masked_fill(row < kth, float("-inf"))
        if p.top_p < 1.0:
            sorted_logits, order = torch.sort(row, descending=True)
            probs = torch.softmax(sorted_logits, dim=-1)
            # Keep the smallest prefix whose mass reaches top_p (always at least the top token).
            drop = torch.cumsum(probs, dim=-1) - probs >= p.top_p
            row = row.scatter(0, order[drop], float("-inf"))
        probs = torch.softmax(row, dim=-1)
        return int(torch.multinomial(probs, 1, generator=gen).item())
