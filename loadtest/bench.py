"""The bake-off: every load point, every round, every target, the same schedule and prompts for each."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Sequence

import msgspec

from loadtest.config import BenchSpec, LoadShape
from loadtest.paired import PairedDiff, compare_pairs
from loadtest.procs import execute, processes_for
from loadtest.record import RequestRecord
from loadtest.runner import Phase
from loadtest.scrape import delta, snapshot
from loadtest.selfcheck import SelfCheck, run_self_check
from loadtest.summary import PointSummary, mark_measured, summarize

FORMAT = "lockgate-bench/1"
RecordSink = Callable[[Sequence[RequestRecord]], None]


class BenchResult(msgspec.Struct, kw_only=True):
    format: str = FORMAT
    created: str
    spec: BenchSpec
    """As run, with API keys removed."""
    self_check: SelfCheck | None = None
    """The client against a zero-latency target: its capacity and its own latency at the run's load."""
    points: list[PointSummary]
    paired: list[PairedDiff] = msgspec.field(default_factory=list)
    """Interleaved runs: each target's latency against the first target's, request by request."""


def redacted(spec: BenchSpec) -> BenchSpec:
    return msgspec.structs.replace(
        spec, targets=tuple(msgspec.structs.replace(t, api_key=None, label=t.name) for t in spec.targets))


def phases(spec: BenchSpec, point: int, load: LoadShape, round_: int) -> list[Phase]:
    """Target order reverses every other round (A B, B A, ...) so drift hits every target alike."""
    order = spec.targets if round_ % 2 == 0 else tuple(reversed(spec.targets))
    if spec.concurrent_targets or spec.interleave:
        return [Phase(point=point, round=round_, load=load, targets=order)]
    return [Phase(point=point, round=round_, load=load, targets=(t,)) for t in order]


def phase_processes(spec: BenchSpec, phase: Phase) -> int:
    # Interleaved, the targets share the slots: the load is the point's concurrency, not one per target.
    return processes_for(spec, phase.load, 1 if spec.interleave else len(phase.targets))


def run_bench(spec: BenchSpec, *, sink: RecordSink | None = None, progress: bool = False) -> BenchResult:
    created = dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
    points: list[PointSummary] = []
    paired: list[PairedDiff] = []
    for point, load in enumerate(spec.loads):
        runs: dict[str, list[list[RequestRecord]]] = {t.name: [] for t in spec.targets}
        before = {t.name: snapshot(t) for t in spec.targets} if spec.scrape_metrics else {}
        for round_ in range(spec.rounds):
            for phase in phases(spec, point, load, round_):
                label = f"{'+'.join(t.name for t in phase.targets)} {_describe(load)} r{round_}"
                records = execute(spec, phase, processes=phase_processes(spec, phase), label=label,
                                  progress=progress)
                for t in phase.targets:
                    mine = sorted((r for r in records if r.target == t.name), key=lambda r: r.index)
                    mark_measured(mine, spec.warmup, spec.cooldown)
                    runs[t.name].append(mine)
                    if sink is not None:
                        sink(mine)
        for t in spec.targets:
            deltas = delta(before.get(t.name), snapshot(t)) if spec.scrape_metrics else None
            points.append(summarize(t.name, point, load, runs[t.name], spec.slo, deltas))
        if spec.interleave:
            paired.extend(compare_pairs(spec.targets, point, load, runs))
    check = run_self_check(spec, points, progress) if spec.self_check else None
    return BenchResult(created=created, spec=redacted(spec), self_check=check, points=points, paired=paired)


def _describe(load: LoadShape) -> str:
    if load.concurrency is not None:
        return f"c={load.concurrency}"
    limit = f" max_conc={load.max_concurrency}" if load.max_concurrency else ""
    return f"{load.arrival} {load.rate:g}/s{limit}"
