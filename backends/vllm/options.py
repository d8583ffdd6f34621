"""Options of the ``vllm`` kind."""

from __future__ import annotations

from backends.http.options import HttpOptions


class VllmOptions(HttpOptions, frozen=True, kw_only=True, forbid_unknown_fields=True):
    continuous_usage: bool = True
    """Ask for usage on every chunk (``continuous_usage_stats``) so each delta's token count is exact."""
    priority_scheduling: bool = False
    """The engine runs with ``--scheduling-policy priority``: send lockgate priorities (vLLM: lower runs first).
    Off, a non-zero ``priority`` would be an error in vLLM, so none is sent."""
    metrics_model_label: bool = True
    """Read /metrics gauges only for this backend's ``model`` (label ``model_name``) when the engine serves several."""
