"""Paired differences: the median's distribution-free bounds and the pairing of records by request."""

from __future__ import annotations

import pytest

from loadtest.config import LoadShape, Target
from loadtest.paired import compare_pairs, median_bounds
from loadtest.record import RequestRecord


@pytest.mark.parametrize(("n", "bounds"), [(5, None), (6, (0, 5)), (10, (1, 8)), (20, (5, 14)), (100, (39, 60))])
def test_median_bounds_match_the_binomial_tables(n: int, bounds: tuple[int, int] | None) -> None:
    # Standard tables (e.g. Conover, Practical Nonparametric Statistics): n=10 -> [x(2), x(9)], n=20 -> [x(6), x(15)].
    assert median_bounds(n) == bounds


def test_large_samples_use_the_normal_approximation_continuously() -> None:
    exact, approx = median_bounds(1000), median_bounds(1001)
    assert exact is not None
    assert approx is not None
    (lo, hi), (lo2, hi2) = exact, approx
    assert abs(lo2 - lo) <= 1
    assert abs(hi2 - hi) <= 1
    assert lo + hi == 999


def _record(target: str, index: int, ttft: float, *, round_: int = 0, ok: bool = True,
            measured: bool = True) -> RequestRecord:
    return RequestRecord(target=target, point=0, round=round_, index=index, prompt_id=str(index), t_sched=0.0,
                         t_send=0.0, t_first=ttft, t_last=ttft + 0.01, t_end=ttft + 0.01, n_out=2,
                         chunk_offsets=[ttft, ttft + 0.01], chunk_tokens=[1, 1], outcome="ok" if ok else "error",
                         measured=measured)


def test_only_requests_both_targets_completed_and_measured_are_paired() -> None:
    targets = (Target(base_url="http://a/v1", model="m", label="A"), Target(base_url="http://b/v1", model="m",
                                                                             label="B"))
    a = [_record("A", i, 0.010) for i in range(8)] + [_record("A", 0, 0.010, round_=1)]
    b = [_record("B", i, 0.013) for i in range(6)] + [_record("B", 6, 0.5, ok=False),
                                                       _record("B", 7, 0.5, measured=False)]
    (d,) = compare_pairs(targets, 0, LoadShape(concurrency=1), {"A": [a], "B": [b]})
    assert d.pairs == 6  # round 1's request has no partner; B's failed and warm-up copies do not count
    assert d.stats["ttft"].p50_added == pytest.approx(0.003)
    assert d.stats["ttft"].median_diff == pytest.approx(0.003)
    assert d.stats["ttft"].ci_low == pytest.approx(0.003)
