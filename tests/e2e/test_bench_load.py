"""Open-loop schedules, client-side queueing (TTFT_sched), several client processes, the self-check."""

from __future__ import annotations

import statistics

import pytest

from backends.sim import SimOptions
from loadtest import BenchSpec, DatasetSpec, LengthDist, LoadShape, RequestRecord, Target, run_bench
from tests.support.bench import serve, sim_handler

SHORT = DatasetSpec(input_len=LengthDist(mean=8), output_len=LengthDist(mean=8))


def test_ttft_sched_exposes_queueing_in_a_deliberately_limited_client() -> None:
    # 40 req/s on a constant schedule; each request takes ~55 ms, and the client allows 1 in flight, so
    # requests wait in the client longer and longer. TTFT hides that; TTFT_sched shows it.
    with serve(sim_handler(SimOptions(ttft_ms=20, tpot_ms=5))) as url:
        result = run_bench(BenchSpec(
            targets=(Target(base_url=url, model="sim"),),
            loads=(LoadShape(rate=40, arrival="constant", max_concurrency=1),), num_requests=24,
            dataset=SHORT, self_check=False))
    (p,) = result.points
    ttft, sched, lag = p.stats["ttft"], p.stats["ttft_sched"], p.stats["send_lag"]
    assert ttft is not None
    assert sched is not None
    assert lag is not None
    assert p.completed == 24
    assert ttft.p50 == pytest.approx(0.020, abs=0.005)  # plus the client's own cost (test_bench_accuracy)
    assert sched.p50 > 5 * ttft.p50
    assert sched.max > 0.5  # the last request waited for ~23 others, ~0.03 s more each than the schedule allows
    assert lag.p50 == pytest.approx(sched.p50 - ttft.p50, abs=0.002)


def test_an_unlimited_open_loop_client_keeps_the_schedule() -> None:
    with serve(sim_handler(SimOptions(ttft_ms=20, tpot_ms=5))) as url:
        result = run_bench(BenchSpec(
            targets=(Target(base_url=url, model="sim"),), loads=(LoadShape(rate=40, arrival="constant"),),
            num_requests=24, dataset=SHORT, self_check=False))
    (p,) = result.points
    lag = p.stats["send_lag"]
    assert lag is not None
    # On time at the median; a busy shared machine may delay a few sends by tens of ms, where a limited client
    # (the test above) lags by hundreds.
    assert lag.p50 < 0.005
    assert lag.max < 0.2
    assert p.achieved_concurrency > 1.5  # ~55 ms each at 40/s: about 2 in flight


def test_several_client_processes_share_one_schedule() -> None:
    records: list[RequestRecord] = []
    with serve(sim_handler(SimOptions(ttft_ms=5, tpot_ms=1))) as url:
        target = Target(base_url=url, model="sim")
        run_bench(BenchSpec(targets=(target,), loads=(LoadShape(rate=100),), num_requests=60, processes=2,
                            dataset=SHORT, self_check=False), sink=records.extend)
        closed: list[RequestRecord] = []
        run_bench(BenchSpec(targets=(target,), loads=(LoadShape(concurrency=4),), num_requests=40, processes=2,
                            dataset=SHORT, self_check=False), sink=closed.extend)
    assert sorted(r.index for r in records) == list(range(60))
    assert all(r.outcome == "ok" for r in records)
    # Both processes keep one schedule: their clocks agree on the start (a wrong anchor would be seconds off).
    assert statistics.median(r.t_send - r.t_sched for r in records) < 0.005
    assert sorted(r.index for r in closed) == list(range(40))  # each index taken exactly once


def test_the_self_check_reports_the_clients_capacity_and_overhead() -> None:
    with serve(sim_handler(SimOptions(ttft_ms=1, tpot_ms=1))) as url:
        result = run_bench(BenchSpec(targets=(Target(base_url=url, model="sim"),), loads=(LoadShape(concurrency=2),),
                                     num_requests=10, dataset=SHORT))
    check = result.self_check
    assert check is not None
    assert check.needed_rate == result.points[0].request_throughput
    cap = check.capacity
    assert cap.target.startswith("self-check")
    assert cap.completed == cap.requests > 0
    assert cap.request_throughput > 5 * check.needed_rate  # this client is far from its limit here
    assert check.at_load is not None
    assert check.at_load.x == pytest.approx(check.needed_rate)
    ttft = check.at_load.stats["ttft"]
    assert ttft is not None
    assert ttft.p50 < 0.005  # a zero-latency target: what is left is the client and loopback


def test_concurrent_targets_get_every_request_at_the_same_instant() -> None:
    records: list[RequestRecord] = []
    with serve(sim_handler(SimOptions(ttft_ms=5, tpot_ms=1))) as url:
        run_bench(BenchSpec(targets=(Target(base_url=url, model="sim", label="A"),
                                     Target(base_url=url, model="sim", label="B")),
                            loads=(LoadShape(rate=50),), num_requests=20, concurrent_targets=True, dataset=SHORT,
                            self_check=False), sink=records.extend)
    a = {r.index: r for r in records if r.target == "A"}
    b = {r.index: r for r in records if r.target == "B"}
    assert sorted(a) == sorted(b) == list(range(20))
    assert all(a[i].t_sched == b[i].t_sched and a[i].prompt_id == b[i].prompt_id for i in a)


def test_a_duration_bound_closed_loop_stops_sending_at_the_duration() -> None:
    records: list[RequestRecord] = []
    with serve(sim_handler(SimOptions(ttft_ms=5, tpot_ms=1))) as url:
        run_bench(BenchSpec(targets=(Target(base_url=url, model="sim"),), loads=(LoadShape(concurrency=2),),
                            duration_s=0.5, dataset=SHORT, self_check=False), sink=records.extend)
    assert len(records) > 10
    assert max(r.t_sched for r in records) < 0.5
    assert all(r.outcome == "ok" for r in records)
