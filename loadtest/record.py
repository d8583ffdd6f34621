"""One request as measured: the raw timeline (one JSONL row) from which every metric is derived.

Times are seconds on the run clock (see ``loadtest.clock``); ``chunk_offsets`` are seconds after ``t_send``.
"""

from __future__ import annotations

from typing import Literal

import msgspec

Outcome = Literal["ok", "error", "incomplete"]


class RequestRecord(msgspec.Struct, kw_only=True):
    target: str
    point: int
    """Index of the load shape (sweep point)."""
    round: int
    index: int
    """Index in the arrival schedule: the same prompt and intended time for every target."""
    prompt_id: str
    t_sched: float
    """Intended send time from the schedule (closed loop: when a slot freed)."""
    t_send: float
    t_first: float | None = None
    """First event carrying at least one token (role-only and empty deltas do not count)."""
    t_last: float | None = None
    """Last token-carrying event."""
    t_end: float = 0.0
    """Response fully read: [DONE], an error, or the connection's end."""
    chunk_offsets: list[float] = msgspec.field(default_factory=list)
    """Arrival of each token-carrying chunk (what one network read delivered), seconds after t_send."""
    chunk_tokens: list[int] = msgspec.field(default_factory=list)
    chunk_tokens_source: str = ""
    n_in: int | None = None
    n_in_source: str = ""
    n_out: int | None = None
    n_out_source: str = ""
    status: int = 0
    outcome: Outcome = "error"
    error_type: str | None = None
    error_message: str | None = None
    finish_reason: str | None = None
    trace_id: str | None = None
    """The gateway's ``x-lockgate-trace-id`` response header, when present."""
    request_id: str | None = None
    """The ``x-request-id`` response header, when present (lockgate and vLLM send one)."""
    gateway_headers: dict[str, str] = msgspec.field(default_factory=dict)
    """lockgate's own ``x-lockgate-*`` response headers (backend, route, queue-ms, ttft-ms as the gateway saw
    it), to set the client's view beside the gateway's."""
    measured: bool = True
    """False for warm-up and cool-down requests (decided after the run)."""
