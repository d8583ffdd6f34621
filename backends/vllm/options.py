"""Options of the ``vllm`` kind."""

from __future__ import annotations

from backends.http.options import HttpOptions


class VllmOptions(HttpOptions, frozen=True, kw_only=True, forbid_unknown_fields=True):
    continuous_usage: bool = True
    """Ask for usage on every chunk (``continuous_usage_stats``) so each delta's token count is exact."""
    token_ids: bool = False
    """Ask for each chunk's token ids (``return_token_ids``, vLLM >= 0.10.2) and count each delta's tokens from
    them: exact for every choice of ``n`` > 1 too. With ``continuous_usage`` off this is the one exact count."""
    priority_scheduling: bool = False
    """The engine runs with ``--scheduling-policy priority``: send each job's priority band as vLLM's
    ``priority`` (negated: vLLM runs lower values first). Off, none is sent: vLLM answers 400 to a non-zero
    ``priority`` unless it was started with that policy."""
    metrics_model_label: bool = True
    """Read /metrics gauges only for this backend's ``model`` (label ``model_name``) when the engine serves several."""
