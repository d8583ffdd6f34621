"""The running batch over a plain onnxruntime session of a model exported by onnxruntime-genai's builder.

Those models attend with ``GroupQueryAttention``, which takes each row's length from the attention mask
(``seqlens_k``) and writes each row's new key/value at that row's own position. So the batch cache is
right-padded: a joining sequence is prefilled alone (exactly single-request numerics), then its cache is
copied into the batch padded on the right; each decode step passes a mask with ``len + 1`` leading ones per row.
A row's logits equal its single-request logits (checked against Transformers in the tests).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import onnxruntime as ort

from backends.inproc.sequence import Sequence
from backends.onnx.sampler import NumpySampler

_DTYPES = {"tensor(float)": np.float32, "tensor(float16)": np.float16}


class OrtBatch:
    def __init__(self, session: ort.InferenceSession, *, kv_heads: int, head_dim: int) -> None:
        self._session = session
        inputs = {i.name: i for i in session.get_inputs()}
        self._past_names = [n for n in inputs if n.startswith("past_key_values.")]
        first = inputs[self._past_names[0]]
        self._kv_heads, self._head_dim = kv_heads, head_dim
        self._dtype = _DTYPES[first.type]
        self._has_positions = "position_ids" in inputs
        self._outputs = [o.name for o in session.get_outputs()]
        self._sampler = NumpySampler()
        self._cache: dict[str, np.ndarray[Any, Any]] = {}
        self._lens: list[int] = []
        self._rows: list[Sequence] = []

    def _run(self, ids: np.ndarray[Any, Any], mask: np.ndarray[Any, Any], past: dict[str, np.ndarray[Any, Any]],
             positions: np.ndarray[Any, Any]) -> tuple[np.ndarray[Any, Any], dict[str, np.ndarray[Any, Any]]]:
        feed = {"input_ids": ids, "attention_mask": mask, **past}
        if self._has_positions:
            feed["position_ids"] = positions
        out = dict(zip(self._outputs, self._session.run(None, feed), strict=True))
        present = {name.replace("present", "past_key_values", 1): value
                   for name, value in out.items() if name.startswith("present")}
        return out["logits"], present

    def prefill(self, seq: Sequence) -> int:
        n = seq.prompt_len
        ids = np.asarray([seq.prompt_ids], dtype=np.int64)
        empty = np.zeros((1, self._kv_heads, 0, self._head_dim), dtype=self._dtype)
        logits, present = self._run(ids, np.ones_like(ids), dict.fromkeys(self._past_names, empty),
                                    np.arange(n, dtype=np.int64)[None, :])
        token = self._sampler.sample(np.array(logits[:, -1, :], dtype=np.float32), [seq])[0]
        self._splice(present, n, seq)
        return token

    def _splice(self, present: dict[str, np.ndarray[Any, Any]], n: int, seq: Sequence) -> None:
        if not self._rows:
            self._cache, self._lens, self._rows = present, [n], [seq]
            return
        width = max(self._width(), n)
        self._cache = {name: np.concatenate([_right_pad(self._cache[name], width), _right_pad(present[name], width)])
                       for name in self._past_names}
        self._lens.append(n)
        self._rows.append(seq)

    def _width(self) -> int:
        return int(self._cache[self._past_names[0]].shape[2])

    def decode(self, seqs: list[Sequence]) -> list[int]:
        assert len(seqs) == len(self._rows)
        width = self._width()
        lens = np.asarray(self._lens, dtype=np.int64)
        mask = (np.arange(width + 1)[None, :] <= lens[:, None]).astype(np.int64)
        ids = np.asarray([[s.last_token] for s in seqs], dtype=np.int64)
        logits, self._cache = self._run(ids, mask, self._cache, lens[:, None])
        self._lens = [n + 1 for n in self._lens]
        return self._sampler.sample(np.array(logits[:, -1, :], dtype=np.float32), seqs)

    def remove(self, rows: list[int]) -> None:
        gone = set(rows)
        for i in rows:
            self._sampler.forget(self._rows[i])
        keep = [i for i in range(len(self._rows)) if i not in gone]
        if not keep:
            self.reset()
            return
        width = max(self._lens[i] for i in keep)
        self._cache = {name: value[keep, :, :width, :] for name, value in self._cache.items()}
        self._lens = [self._lens[i] for i in keep]
        self._rows = [self._rows[i] for i in keep]

    def reset(self) -> None:
        for seq in self._rows:
            self._sampler.forget(seq)
        self._cache, self._lens, self._rows = {}, [], []


def _right_pad(a: np.ndarray[Any, Any], width: int) -> np.ndarray[Any, Any]:
    missing = width - a.shape[2]
    return a if missing == 0 else np.pad(a, ((0, 0), (0, 0), (0, missing), (0, 0)))
