"""A KV cache layer with spare capacity along the sequence, so a decode step writes in place.

Transformers' ``DynamicLayer`` appends with ``torch.cat`` every step: a full copy of the batch's cache and a
fresh allocation of a slightly larger size per layer per step. On a GPU that measured ~145 ms per step at batch
32 for a 1.5B model, against ~30 ms at batch 1. This layer keeps a buffer that doubles when full and exposes
views of its filled part.
"""

from __future__ import annotations

from typing import Any

import torch
from transformers.cache_utils import DynamicLayer

MIN_HEADROOM = 64


class ReservedLayer(DynamicLayer):  # type: ignore[no-untyped-call]
    def __init__(self, keys: torch.Tensor, values: torch.Tensor) -> None:
        super().__init__()  # type: ignore[no-untyped-call]
        self.dtype, self.device = keys.dtype, keys.device
        self.is_initialized = True
        self.assign(keys, values)

    def assign(self, keys: torch.Tensor, values: torch.Tensor, headroom: int = MIN_HEADROOM) -> None:
        """Replace the contents (after rows joined or left)."""
        length = keys.shape[-2]
        shape = (*keys.shape[:-2], length + headroom, keys.shape[-1])
        self._k = keys.new_empty(shape)
        self._v = values.new_empty((*values.shape[:-2], length + headroom, values.shape[-1]))
        self._k[..., :length, :] = keys
        self._v[..., :length, :] = values
        self._len = length
        self.keys, self.values = self._k[..., :length, :], self._v[..., :length, :]

    def update(self, key_states: torch.Tensor, value_states: torch.Tensor, *args: Any,
               **kwargs: Any) -> tuple[torch.Tensor, torch.Tensor]:
        n = key_states.shape[-2]
        if self._len + n > self._k.shape[-2]:
            self.assign(self._k[..., :self._len, :], self._v[..., :self._len, :],
                        headroom=max(MIN_HEADROOM, self._len, n))
        self._k[..., self._len:self._len + n, :] = key_states
        self._v[..., self._len:self._len + n, :] = value_states
        self._len += n
        self.keys, self.values = self._k[..., :self._len, :], self._v[..., :self._len, :]
        return self.keys, self.values
