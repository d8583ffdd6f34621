"""Options of the ``vllm`` kind."""

from __future__ import annotations

from backends.http.options import HttpOptions


class VllmOptions(HttpOptions, frozen=True, kw_only=True, forbid_unknown_fields=True):
    token_ids: bool = True
    """Ask for each chunk's token ids (``return_token_ids``, vLLM >= 0.10.2) and count each delta's tokens from
    them: exact for every choice of ``n`` > 1 too. Cheaper for vLLM's API server than per-chunk usage: on the GPU
    bake-off at 32 concurrent it spent 64 µs per output token with token ids, 71 µs with usage on every chunk
    (docs/gpu-bakeoff.md). An older vLLM ignores the field; deltas are then counted one per text chunk."""
    continuous_usage: bool = False
    """Ask for usage on every chunk (``continuous_usage_stats``) instead: exact for ``n`` = 1 only, and more work
    per chunk for vLLM. For a vLLM older than 0.10.2 that must still count exactly."""
    priority_scheduling: bool = False
    """The engine runs with ``--scheduling-policy priority``: send each job's priority band as vLLM's
    ``priority`` (negated: vLLM runs lower values first). Off, none is sent: vLLM answers 400 to a non-zero
    ``priority`` unless it was started with that policy."""
    metrics_model_label: bool = True
    """Read /metrics gauges only for this backend's ``model`` (label ``model_name``) when the engine serves several."""
