"""Options of the ``trtllm`` kind."""

from __future__ import annotations

from typing import Annotated, Literal

import msgspec

from backends.http.options import HttpOptions


class TrtllmOptions(HttpOptions, frozen=True, kw_only=True, forbid_unknown_fields=True):
    protocol: Literal["openai", "triton"] = "openai"
    """``openai``: ``trtllm-serve``'s ``/v1`` endpoints. ``triton``: a Triton ``tensorrtllm_backend`` model's
    ``/v2/models/{triton_model}/generate_stream`` (no chat template: chat is flattened; no usage from the engine)."""
    triton_model: str = "ensemble"
    """With ``protocol = "triton"``: the Triton model to call."""
    priority_levels: Annotated[int, msgspec.Meta(ge=1)] = 10
    """lockgate priorities ``-levels..levels`` map onto TensorRT-LLM's float scale [0, 1] (0.5 is neutral,
    higher runs first); priorities beyond are clamped."""
    metrics_path: str = "/prometheus/metrics"
    """Prometheus endpoint (``/metrics`` is JSON iteration stats that are removed once read)."""
