"""Retry budget, reservoirs, percentiles and paired differences."""

from __future__ import annotations

import random

import pytest

from routing.budget import RetryBudget
from routing.experiments import ExperimentStore, Timing
from routing.stats import Reservoir, paired_difference, summarize


def test_retry_budget_allows_ratio_plus_floor_and_refills_with_time() -> None:
    now = [0.0]
    budget = RetryBudget(0.2, 0.1, window_s=10, clock=lambda: now[0])
    for _ in range(20):
        budget.record_request()
    # 0.2 * 20 requests + 0.1/s * 10 s = 5 retries.
    assert [budget.try_retry() for _ in range(7)] == [True] * 5 + [False] * 2
    now[0] = 11.0
    assert budget.try_retry()  # the window moved on


def test_reservoir_is_bounded_and_uniform() -> None:
    r = Reservoir(size=100, rng=random.Random(3))
    for i in range(10_000):
        r.add(float(i))
    assert len(r.values) == 100
    assert r.count == 10_000
    assert 3500 < sum(r.values) / 100 < 6500


def test_percentiles() -> None:
    s = summarize([float(i) for i in range(1, 101)])
    assert (s.p50, s.p90, s.p99, s.mean) == (50.0, 90.0, 99.0, 50.5)
    assert summarize([]).p50 is None


def test_paired_difference_confidence_interval() -> None:
    rng = random.Random(5)
    primary = [rng.gauss(0.100, 0.010) for _ in range(200)]
    shadow = [p + 0.020 + rng.gauss(0, 0.002) for p in primary]
    d = paired_difference(primary, shadow)
    assert d.mean == pytest.approx(0.020, abs=0.001)
    assert d.ci95_low is not None
    assert d.ci95_high is not None
    assert d.ci95_low < 0.020 < d.ci95_high
    assert d.ci95_high - d.ci95_low < 0.002


def test_store_reports_arms_and_completed_pairs_only() -> None:
    store = ExperimentStore()
    store.record_arm("m", "a", Timing("a", True, ttft=0.1, completion_tokens=5))
    store.record_arm("m", "a", Timing("a", False, error="engine_error"))
    pair = store.open_pair("m")
    store.record_side(pair, "primary", Timing("a", True, ttft=0.1))
    assert not store.pairs
    store.record_side(pair, "shadow", Timing("s", True, ttft=0.3))
    report = store.report()["m"]
    assert report.arms["a"].requests == 2
    assert report.arms["a"].error_rate == 0.5
    shadow = report.shadows["a->s"]
    assert shadow.pairs == 1
    assert shadow.difference["ttft"].mean == pytest.approx(0.2)
