"""Options of the ``sglang`` kind."""

from __future__ import annotations

from typing import Literal

from backends.http.options import HttpOptions


class SglangOptions(HttpOptions, frozen=True, kw_only=True, forbid_unknown_fields=True):
    protocol: Literal["native", "openai"] = "native"
    """``native``: text completions go to ``/generate`` (exact per-chunk token counts from ``meta_info``); chat
    still goes to ``/v1/chat/completions`` because the chat template lives in the engine. ``openai``: both go to
    the OpenAI endpoints."""
    incremental_output: bool = False
    """The server runs with ``--incremental-streaming-output`` (native ``text`` is a delta, not the whole text)."""
    health_path: Literal["/health", "/health_generate"] = "/health"
    """Health endpoint; both run a one-token generation by default, ``/health_generate`` always does."""
    continuous_usage: bool = True
    """On the OpenAI endpoints, ask for usage on every chunk for exact token counts."""
    priority_scheduling: bool = False
    """The engine runs with ``--enable-priority-scheduling``: send each job's priority band as ``priority``.
    Off, none is sent (SGLang ignores it then, or aborts the request with ``--abort-on-priority-when-disabled``)."""
    low_priority_values_first: bool = False
    """The engine runs with ``--schedule-low-priority-values-first``: the band is negated so higher still runs
    first."""
