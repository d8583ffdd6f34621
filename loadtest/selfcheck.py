"""The client checks itself against a zero-latency target, so a report says what the client itself costs.

Two measurements, after the real run:
- capacity: closed loop at the run's largest concurrency, as fast as the client goes. Compare it with the
  throughput the run needed: a client near its capacity queues requests and inflates every latency.
- at load: open loop (Poisson) at the heaviest request rate the run reached (or asked for). Whatever TTFT and
  ITL the zero-latency target shows at that rate is the client's and the loopback's own overhead.
"""

from __future__ import annotations

from collections.abc import Sequence

import msgspec

from loadtest.config import SLO, BenchSpec, Exclusion, LoadShape, Target
from loadtest.procs import execute, processes_for
from loadtest.runner import Phase
from loadtest.summary import PointSummary, mark_measured, summarize
from loadtest.zero_server import ZeroLatencyServer

LABEL = "self-check (zero-latency target)"
CAPACITY_REQUESTS = 200
AT_LOAD_SECONDS = 3.0


class SelfCheck(msgspec.Struct, kw_only=True):
    capacity: PointSummary
    """Closed loop at the run's largest concurrency: the most this client sustains here."""
    at_load: PointSummary | None = None
    """Open loop at the run's heaviest rate: the client's own latency at that load."""
    needed_rate: float = 0.0
    """The heaviest request rate of the run (achieved, or asked for in open loop)."""


def _run(spec: BenchSpec, target: Target, load: LoadShape, count: int, progress: bool) -> PointSummary:
    check = msgspec.structs.replace(
        spec, targets=(target,), loads=(load,), num_requests=count, duration_s=None,
        # The first requests open connections; a server's accept is not what this measures.
        warmup=Exclusion(requests=min(10, count // 5)), cooldown=Exclusion(), rounds=1, concurrent_targets=False,
        interleave=False,
        slo=SLO())
    records = execute(check, Phase(point=0, round=0, load=load, targets=(target,)),
                      processes=processes_for(check, load, 1), label="self-check", progress=progress)
    mark_measured(records, check.warmup, check.cooldown)
    return summarize(LABEL, 0, load, [records], check.slo)


def run_self_check(spec: BenchSpec, points: Sequence[PointSummary], progress: bool) -> SelfCheck:
    concurrency = max([ld.concurrency or ld.max_concurrency or 0 for ld in spec.loads] + [1])
    rate = max([p.request_throughput for p in points] + [ld.rate or 0.0 for ld in spec.loads])
    with ZeroLatencyServer() as server:
        target = Target(base_url=server.base_url, model="zero", label=LABEL)
        capacity = _run(spec, target, LoadShape(concurrency=concurrency), CAPACITY_REQUESTS, progress)
        at_load = None
        if rate > 0:
            count = max(50, min(2000, int(rate * AT_LOAD_SECONDS)))
            at_load = _run(spec, target, LoadShape(rate=rate), count, progress)
    return SelfCheck(capacity=capacity, at_load=at_load, needed_rate=rate)
