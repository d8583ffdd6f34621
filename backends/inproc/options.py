"""Options common to the in-process engines."""

from __future__ import annotations

from typing import Annotated

import msgspec

Positive = Annotated[int, msgspec.Meta(ge=1)]


class InprocOptions(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    model: str
    """Local directory of the model (Hugging Face layout for ``hf``, onnxruntime-genai output for ``onnx``)."""
    device: str = "cpu"
    """``cpu`` or ``cuda`` (``cuda:N`` for ``hf``)."""
    max_model_len: Positive | None = None
    """Context length: prompt plus generated tokens. Default: the model config's ``max_position_embeddings``."""
    max_batch_size: Positive = 32
    """Sequences decoded together in one step; further requests wait."""
    max_batch_tokens: Positive = 8192
    """Token budget of one step: the running sequences' context plus the prompts prefilled in that step."""
    max_waiting: Annotated[int, msgspec.Meta(ge=0)] = 256
    """Requests the engine queues beyond the running batch (the worker hands it this many jobs at once)."""
    step_log_size: Positive = 4096
    """Scheduler steps kept in memory for inspection (batch size per step)."""
