"""Options of the ``onnx`` kind."""

from __future__ import annotations

from typing import Annotated, Literal

import msgspec

from backends.inproc.options import InprocOptions


class OnnxOptions(InprocOptions, frozen=True, forbid_unknown_fields=True):
    batching: Literal["continuous", "genai"] = "continuous"
    """``continuous``: lockgate's scheduler over an onnxruntime session (requests join at the next step).
    ``genai``: onnxruntime-genai's own Engine, with ``dynamic_batching`` and ``gather_ms`` below."""
    dynamic_batching: bool = False
    """With ``batching = "genai"``: use onnxruntime-genai's dynamic (continuous) batching. It needs a model
    built with paged attention (``use_paged_attention=true``, CUDA fp16/bf16); otherwise its static batching
    runs: requests that arrive while a batch runs join when that batch has drained."""
    gather_ms: Annotated[float, msgspec.Meta(ge=0)] = 5.0
    """With ``batching = "genai"``: when the engine is idle, wait this long after a request arrives so that
    concurrent arrivals start in one batch (static batching cannot add them later)."""
