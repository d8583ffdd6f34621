"""``lockgate bench --interleave``: every request to each target in turn, one shared run, added latency paired."""

from __future__ import annotations

import asyncio
import itertools
from typing import Any

import pytest

from loadtest import BenchSpec, DatasetSpec, LengthDist, LoadShape, RequestRecord, Target, run_bench
from loadtest.output import html, table
from tests.support.bench import DONE, ROLE, Handler, Write, content, finish, serve, usage

SHORT = DatasetSpec(input_len=LengthDist(mean=8), output_len=LengthDist(mean=4))


def drifting(base_ms: float, drift_ms: float) -> Handler:
    """First token after ``base_ms`` plus ``drift_ms`` per request served before: an engine that slows down."""
    served = [0]

    async def handle(path: str, body: dict[str, Any], write: Write) -> bool:
        delay = (base_ms + drift_ms * served[0]) / 1000
        served[0] += 1
        await write(ROLE)
        await asyncio.sleep(delay)
        for _ in range(4):
            await write(content("tok "))
            await asyncio.sleep(0.001)
        await write(finish() + usage(8, 4) + DONE)
        return True

    return handle


def _spec(a: str, b: str, *, interleave: bool, concurrency: int = 1, processes: int = 1) -> BenchSpec:
    return BenchSpec(targets=(Target(base_url=a, model="m", label="A"), Target(base_url=b, model="m", label="B")),
                     loads=(LoadShape(concurrency=concurrency),), num_requests=24, dataset=SHORT, interleave=interleave,
                     processes=processes, self_check=False)


def _ttft_p50_added(spec: BenchSpec) -> float:
    result = run_bench(spec)
    a, b = (p.stats["ttft"] for p in result.points)
    assert a is not None
    assert b is not None
    return b.p50 - a.p50


def test_interleaving_cancels_the_engines_drift_that_separate_runs_report_as_a_difference() -> None:
    # One engine behind both labels, slowing 2.5 ms per request: run one after the other, B meets the slower
    # half and looks ~60 ms worse; interleaved, both meet the same engine and the difference is gone (what is
    # left: the 2.5 ms between a request's two copies, either way round, and the machine's timer noise).
    with serve(drifting(2, 2.5)) as url:
        apart = _ttft_p50_added(_spec(url, url, interleave=False))
    with serve(drifting(2, 2.5)) as url:
        result = run_bench(_spec(url, url, interleave=True))
    assert apart > 0.040
    (d,) = result.paired
    assert (d.target, d.baseline, d.pairs) == ("B", "A", 24)
    ttft = d.stats["ttft"]
    assert abs(ttft.p50_added) < 0.008
    assert abs(ttft.median_diff) < 0.008
    assert ttft.ci_low is not None
    assert ttft.ci_high is not None
    assert ttft.ci_low <= ttft.median_diff <= ttft.ci_high


def test_a_real_difference_is_measured_in_pairs_with_its_interval() -> None:
    with serve(drifting(5, 0)) as a, serve(drifting(25, 0)) as b:
        result = run_bench(_spec(a, b, interleave=True))
    (d,) = result.paired
    ttft = d.stats["ttft"]
    assert ttft.p50_added == pytest.approx(0.020, abs=0.006)
    assert ttft.median_diff == pytest.approx(0.020, abs=0.006)
    assert ttft.ci_low is not None
    assert ttft.ci_low > 0.010  # the interval excludes "no difference"
    text = table.paired_lines(result.paired)
    row = next(line for line in text.splitlines() if line.startswith("B "))
    assert row.split()[:4] == ["B", "A", "conc=1", "24"]
    assert 14.0 < float(row.split()[4]) < 26.0  # TTFT p50 added, ms
    report = html.render(result)
    assert "Added latency, request by request" in report
    assert "interleaved request by request" in report


def _by_send(records: list[RequestRecord]) -> list[RequestRecord]:
    return sorted(records, key=lambda r: r.t_send)


def test_one_slot_sends_each_copy_after_the_last_ended_first_target_rotating() -> None:
    records: list[RequestRecord] = []
    with serve(drifting(1, 0)) as a, serve(drifting(1, 0)) as b:
        run_bench(_spec(a, b, interleave=True), sink=records.extend)
    ordered = _by_send(records)
    assert len(ordered) == 48
    # One request in flight at a time: the engine never sees both targets at once.
    assert all(nxt.t_send >= prev.t_end for prev, nxt in itertools.pairwise(ordered))
    assert [(r.index, r.target) for r in ordered[:4]] == [(0, "A"), (0, "B"), (1, "B"), (1, "A")]


def test_shared_slots_over_processes_pair_every_request() -> None:
    records: list[RequestRecord] = []
    with serve(drifting(2, 0)) as a, serve(drifting(2, 0)) as b:
        result = run_bench(_spec(a, b, interleave=True, concurrency=4, processes=2), sink=records.extend)
    for label in ("A", "B"):
        assert sorted(r.index for r in records if r.target == label) == list(range(24))
    (d,) = result.paired
    assert d.pairs == 24
    # Four slots in all, not four per target: never more than four requests in flight.
    events = sorted([(r.t_send, 1) for r in records] + [(r.t_end, -1) for r in records])
    level = peak = 0
    for _, step in events:
        level += step
        peak = max(peak, level)
    assert peak <= 4


def test_interleave_refuses_an_open_loop_and_concurrent_targets() -> None:
    target = (Target(base_url="http://a/v1", model="m"),)
    with pytest.raises(ValueError, match="closed loop"):
        BenchSpec(targets=target, loads=(LoadShape(rate=1),), num_requests=1, interleave=True)
    with pytest.raises(ValueError, match="choose one"):
        BenchSpec(targets=target, loads=(LoadShape(concurrency=1),), num_requests=1, interleave=True,
                  concurrent_targets=True)
