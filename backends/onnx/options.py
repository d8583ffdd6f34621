"""Options of the ``onnx`` kind."""

from __future__ import annotations

from typing import Annotated

import msgspec

from backends.inproc.options import InprocOptions


class OnnxOptions(InprocOptions, frozen=True, forbid_unknown_fields=True):
    dynamic_batching: bool = False
    """Use onnxruntime-genai's dynamic (continuous) batching. It needs a model built with paged attention
    (``use_paged_attention=true``, CUDA fp16/bf16); otherwise its static batching runs: requests that arrive while
    a batch runs join when that batch has drained."""
    gather_ms: Annotated[float, msgspec.Meta(ge=0)] = 5.0
    """When the engine is idle, wait this long after a request arrives so that concurrent arrivals start in one
    batch (static batching cannot add them later)."""
