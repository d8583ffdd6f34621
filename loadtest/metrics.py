"""Per-request metrics, exactly as ``docs/bench.md`` (and shared METRICS.md) define them.

All derive from a ``RequestRecord``'s raw timeline, so anyone can recompute them from the JSONL.
"""

from __future__ import annotations

import msgspec

from loadtest.record import RequestRecord


class RequestMetrics(msgspec.Struct, frozen=True):
    ttft: float | None
    """t_first - t_send."""
    ttft_sched: float | None
    """t_first - t_sched: includes time the request waited in the client (coordinated omission)."""
    e2e: float | None
    """t_last - t_send."""
    e2e_sched: float | None
    tpot: float | None
    """(E2E - TTFT) / (N_out - 1), for N_out >= 2."""
    itl: list[float]
    """Token-weighted: each chunk after the first, gap dt carrying k tokens, gives k samples of dt / k."""
    icl: list[float]
    """Raw gaps between consecutive token-carrying chunks."""
    send_lag: float
    """t_send - t_sched: how late the client sent (its own queueing or overload)."""


def derive(r: RequestRecord) -> RequestMetrics:
    ttft = ttft_sched = e2e = e2e_sched = tpot = None
    if r.t_first is not None and r.t_last is not None:
        ttft, ttft_sched = r.t_first - r.t_send, r.t_first - r.t_sched
        e2e, e2e_sched = r.t_last - r.t_send, r.t_last - r.t_sched
        if r.n_out is not None and r.n_out >= 2:
            tpot = (e2e - ttft) / (r.n_out - 1)
    itl: list[float] = []
    icl: list[float] = []
    offsets, tokens = r.chunk_offsets, r.chunk_tokens
    last = offsets[0] if offsets else 0.0
    for i in range(1, len(offsets)):
        icl.append(offsets[i] - offsets[i - 1])
        k = tokens[i] if i < len(tokens) else 1
        if k <= 0:
            # Text whose tokens were counted in a neighbouring chunk (a tokenizer count rescaled to the usage
            # total can give a chunk none): its gap belongs to the next counted chunk's, not a sample of its own.
            continue
        itl.extend([(offsets[i] - last) / k] * k)
        last = offsets[i]
    return RequestMetrics(ttft=ttft, ttft_sched=ttft_sched, e2e=e2e, e2e_sched=e2e_sched, tpot=tpot,
                          itl=itl, icl=icl, send_lag=r.t_send - r.t_sched)


def meets(m: RequestMetrics, ttft_s: float | None, tpot_s: float | None, e2e_s: float | None) -> bool:
    """Meets every SLO that is set. A request without a TPOT (one token) meets any TPOT SLO."""
    if ttft_s is not None and (m.ttft is None or m.ttft > ttft_s):
        return False
    if tpot_s is not None and m.tpot is not None and m.tpot > tpot_s:
        return False
    return not (e2e_s is not None and (m.e2e is None or m.e2e > e2e_s))
