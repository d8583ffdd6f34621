"""Options of the ``hf`` kind."""

from __future__ import annotations

from typing import Annotated, Literal

import msgspec

from backends.inproc.options import InprocOptions


class HfOptions(InprocOptions, frozen=True, forbid_unknown_fields=True):
    dtype: Literal["auto", "float32", "float16", "bfloat16"] = "auto"
    """Weights and activations dtype; ``auto`` is float32 on CPU (exact batching) and bfloat16 on CUDA."""
    attn_implementation: Literal["sdpa", "eager"] = "sdpa"
    """Transformers attention kernel."""
    torch_threads: Annotated[int, msgspec.Meta(ge=1)] | None = None
    """PyTorch intra-op threads (``torch.set_num_threads``, process-wide). On a small, shared CPU machine 1 can
    be several times faster than the default: spinning worker threads starve the event loop and each other."""
