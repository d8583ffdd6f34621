"""Per-run aggregates for one target at one load point: window, throughputs, goodput, statistics."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence
from typing import Literal

import msgspec

from loadtest.config import SLO, Exclusion, LoadShape
from loadtest.metrics import RequestMetrics, derive, meets
from loadtest.record import RequestRecord
from loadtest.stats import Stats, describe

LATENCIES = ("ttft", "ttft_sched", "tpot", "itl", "icl", "e2e", "e2e_sched", "send_lag")
CDF_POINTS = 200


class PointSummary(msgspec.Struct, kw_only=True):
    target: str
    point: int
    load: LoadShape
    x_name: Literal["concurrency", "rate"]
    x: float
    rounds: int
    requests: int
    """Measured requests (warm-up and cool-down excluded)."""
    completed: int
    failed: int
    """Errors and incomplete streams."""
    incomplete: int
    errors: dict[str, int]
    window_s: float
    """Sum over rounds of first measured send -> last measured response end."""
    request_throughput: float
    output_token_throughput: float
    total_token_throughput: float
    achieved_concurrency: float
    goodput: float
    """Requests meeting every SLO per second of the window."""
    slo_attainment: float
    """Fraction of measured requests meeting every SLO."""
    stats: dict[str, Stats | None]
    """Seconds for latencies; tokens for n_in and n_out."""
    token_sources: dict[str, int]
    cdf: dict[str, list[float]]
    """Up to 200 evenly spaced order statistics per latency, for the report's CDFs."""
    metrics_delta: dict[str, float] | None = None
    """Counters of the target's /metrics, after minus before (when scraped)."""


def mark_measured(records: Sequence[RequestRecord], warmup: Exclusion, cooldown: Exclusion) -> None:
    """Flag warm-up and cool-down requests of one (target, point, round) run."""
    if not records:
        return
    total = max(r.index for r in records) + 1
    last_sched = max(r.t_sched for r in records)
    first_sched = min(r.t_sched for r in records)
    for r in records:
        r.measured = not (
            r.index < warmup.requests or r.index >= total - cooldown.requests
            or r.t_sched < first_sched + warmup.seconds or r.t_sched > last_sched - cooldown.seconds)


def window(records: Iterable[RequestRecord]) -> float:
    measured = [r for r in records if r.measured]
    if not measured:
        return 0.0
    return max(r.t_end for r in measured) - min(r.t_send for r in measured)


def _cdf(values: list[float]) -> list[float]:
    xs = sorted(values)
    if len(xs) <= CDF_POINTS:
        return xs
    return [xs[round(i * (len(xs) - 1) / (CDF_POINTS - 1))] for i in range(CDF_POINTS)]


def summarize(target: str, point: int, load: LoadShape, runs: Sequence[Sequence[RequestRecord]], slo: SLO,
              metrics_delta: dict[str, float] | None = None) -> PointSummary:
    """``runs``: the records of each round, already marked."""
    w = sum(window(run) for run in runs)
    measured = [r for run in runs for r in run if r.measured]
    ok = [r for r in measured if r.outcome == "ok"]
    derived: list[RequestMetrics] = [derive(r) for r in ok]
    samples: dict[str, list[float]] = {name: [] for name in LATENCIES}
    for m in derived:
        for name in ("ttft", "ttft_sched", "tpot", "e2e", "e2e_sched", "send_lag"):
            value = getattr(m, name)
            if value is not None:
                samples[name].append(value)
        samples["itl"].extend(m.itl)
        samples["icl"].extend(m.icl)
    n_out = sum(r.n_out or 0 for r in ok)
    n_in = sum(r.n_in or 0 for r in ok)
    good = sum(meets(m, slo.ttft_s, slo.tpot_s, slo.e2e_s) for m in derived)
    stats: dict[str, Stats | None] = {name: describe(values) for name, values in samples.items()}
    stats["n_out"] = describe([float(r.n_out or 0) for r in ok])
    stats["n_in"] = describe([float(r.n_in or 0) for r in ok])
    per_s = (lambda v: v / w) if w > 0 else (lambda v: 0.0)
    sources = Counter(f"n_out:{r.n_out_source}" for r in ok) + Counter(f"n_in:{r.n_in_source}" for r in ok)
    closed = load.concurrency is not None
    return PointSummary(
        target=target, point=point, load=load, x_name="concurrency" if closed else "rate",
        x=float(load.concurrency if load.concurrency is not None else load.rate or 0.0), rounds=len(runs),
        requests=len(measured), completed=len(ok), failed=len(measured) - len(ok),
        incomplete=sum(r.outcome == "incomplete" for r in measured),
        errors=dict(Counter(r.error_type or "unknown" for r in measured if r.outcome != "ok")),
        window_s=w, request_throughput=per_s(len(ok)), output_token_throughput=per_s(n_out),
        total_token_throughput=per_s(n_out + n_in),
        achieved_concurrency=per_s(sum(m.e2e for m in derived if m.e2e is not None)),
        goodput=per_s(good), slo_attainment=good / len(measured) if measured else 0.0,
        stats=stats, token_sources=dict(sources), cdf={k: _cdf(v) for k, v in samples.items()},
        metrics_delta=metrics_delta)
