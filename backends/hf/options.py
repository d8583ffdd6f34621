"""Options of the ``hf`` kind."""

from __future__ import annotations

from typing import Literal

from backends.inproc.options import InprocOptions


class HfOptions(InprocOptions, frozen=True, forbid_unknown_fields=True):
    dtype: Literal["auto", "float32", "float16", "bfloat16"] = "auto"
    """Weights and activations dtype; ``auto`` is float32 on CPU (exact batching) and bfloat16 on CUDA."""
    attn_implementation: Literal["sdpa", "eager"] = "sdpa"
    """Transformers attention kernel."""
