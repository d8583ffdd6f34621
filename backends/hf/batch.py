"""The running batch of the ``hf`` engine: one left-padded KV cache whose rows are sequences.

A joining sequence is prefilled alone (batch 1, no padding, so its KV is exactly what single-request generation
computes), then spliced into the batch cache, left-padded with zeros to the common length. Every decode step feeds
one token per row with an attention mask that hides each row's padding and position ids equal to each row's own
length, so a row's logits match its single-request logits. Leaving rows are removed with ``index_select`` and
padding columns that no remaining row needs are trimmed.
"""

from __future__ import annotations

from typing import Any

import torch
from torch.nn.attention import SDPBackend, sdpa_kernel
from transformers import DynamicCache

from backends.hf.kv import ReservedLayer
from backends.hf.sampler import Sampler
from backends.inproc.sequence import Sequence

# cuDNN's SDPA builds an execution plan for every new key length, i.e. at every decode step: measured 1.6 ms of
# CPU per attention call on an H100 (45 ms per step for 28 layers), more than the whole step otherwise costs.
_SDPA_BACKENDS = [SDPBackend.FLASH_ATTENTION, SDPBackend.EFFICIENT_ATTENTION, SDPBackend.MATH]


class HfBatch:
    def __init__(self, model: Any, device: torch.device) -> None:
        self._model = model
        self._device = device
        self._sampler = Sampler(device)
        # Any: transformers types cache layers as a union that includes layers without keys/values.
        self._cache: Any = None
        self._pads: list[int] = []  # left padding columns of each row
        self._rows: list[Sequence] = []

    @property
    def width(self) -> int:
        """Cache length shared by all rows (real tokens + padding)."""
        if self._cache is None:
            return 0
        return int(self._cache.layers[0].keys.shape[-2])

    @torch.inference_mode()
    def prefill(self, seq: Sequence) -> int:
        ids = torch.tensor([seq.prompt_ids], dtype=torch.long, device=self._device)
        cache: Any = DynamicCache(config=self._model.config)
        with sdpa_kernel(_SDPA_BACKENDS):
            out = self._model(input_ids=ids, past_key_values=cache, use_cache=True, logits_to_keep=1)
        token = self._sampler.sample(out.logits[:, -1, :], [seq])[0]
        self._splice(cache, seq)
        return token

    def _splice(self, cache: Any, seq: Sequence) -> None:
        if self._cache is None:
            self._cache = DynamicCache(config=self._model.config)
            self._cache.layers = [ReservedLayer(layer.keys, layer.values) for layer in cache.layers]
            self._pads, self._rows = [0], [seq]
            return
        old_w, new_w = self.width, int(cache.layers[0].keys.shape[-2])
        width = max(old_w, new_w)
        for mine, theirs in zip(self._cache.layers, cache.layers, strict=True):
            mine.assign(torch.cat([_left_pad(mine.keys, width), _left_pad(theirs.keys, width)], dim=0),
                        torch.cat([_left_pad(mine.values, width), _left_pad(theirs.values, width)], dim=0))
        self._pads = [p + width - old_w for p in self._pads] + [width - new_w]
        self._rows.append(seq)

    @torch.inference_mode()
    def decode(self, seqs: list[Sequence]) -> list[int]:
        assert self._cache is not None
        assert len(seqs) == len(self._rows)
        width = self.width
        pads = torch.tensor(self._pads, device=self._device)
        cols = torch.arange(width + 1, device=self._device)
        mask = (cols[None, :] >= pads[:, None]).long()
        positions = (width - pads)[:, None]
        ids = torch.tensor([[s.last_token] for s in seqs], dtype=torch.long, device=self._device)
        with sdpa_kernel(_SDPA_BACKENDS):
            out = self._model(input_ids=ids, attention_mask=mask, position_ids=positions,
                              past_key_values=self._cache, use_cache=True)
        return self._sampler.sample(out.logits[:, -1, :], seqs)

    def remove(self, rows: list[int]) -> None:
        gone = set(rows)
        for i in rows:
            self._sampler.forget(self._rows[i])
        keep = [i for i in range(len(self._rows)) if i not in gone]
        if not keep:
            self.reset()
            return
        assert self._cache is not None
        index = torch.tensor(keep, device=self._device)
        trim = min(self._pads[i] for i in keep)
        for layer in self._cache.layers:
            layer.assign(layer.keys.index_select(0, index)[:, :, trim:, :],
                         layer.values.index_select(0, index)[:, :, trim:, :])
        self._pads = [self._pads[i] - trim for i in keep]
        self._rows = [self._rows[i] for i in keep]

    def reset(self) -> None:
        for seq in self._rows:
            self._sampler.forget(seq)
        self._cache, self._pads, self._rows = None, [], []


def _left_pad(t: torch.Tensor, width: int) -> torch.Tensor:
    missing = width - t.shape[-2]
    if missing == 0:
        return t
    zeros = t.new_zeros((*t.shape[:-2], missing, t.shape[-1]))
    return torch.cat([zeros, t], dim=-2)
