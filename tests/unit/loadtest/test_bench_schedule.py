"""Arrival schedules: the requested rate, the requested burstiness, the same schedule for the same seed."""

from __future__ import annotations

import itertools
import math
import statistics

import pytest

from loadtest.config import LoadShape
from loadtest.schedule import open_loop

N = 20_000


def _gaps(load: LoadShape, seed: int = 7) -> list[float]:
    offsets = open_loop(load, seed, N, None)
    return [b - a for a, b in itertools.pairwise(offsets)]


def test_poisson_schedule_has_the_requested_rate() -> None:
    rate = 25.0
    gaps = _gaps(LoadShape(rate=rate))
    # The mean of N exponential gaps has standard error (1/rate)/sqrt(N): allow 4 of them.
    assert abs(statistics.fmean(gaps) - 1 / rate) < 4 * (1 / rate) / math.sqrt(N)
    # Exponential gaps: coefficient of variation 1, and P(gap > mean) = 1/e.
    assert statistics.stdev(gaps) / statistics.fmean(gaps) == pytest.approx(1.0, abs=0.03)
    assert sum(g > 1 / rate for g in gaps) / len(gaps) == pytest.approx(math.exp(-1), abs=0.01)


def test_poisson_counts_per_second_have_poisson_variance() -> None:
    rate = 50.0
    offsets = open_loop(LoadShape(rate=rate), 3, None, 400.0)
    counts = [0] * 400
    for t in offsets:
        counts[int(t)] += 1
    assert statistics.fmean(counts) == pytest.approx(rate, rel=0.03)
    assert statistics.variance(counts) == pytest.approx(rate, rel=0.2)  # index of dispersion 1


@pytest.mark.parametrize("burstiness", [0.25, 4.0])
def test_gamma_schedule_keeps_the_rate_and_sets_the_burstiness(burstiness: float) -> None:
    gaps = _gaps(LoadShape(rate=10.0, arrival="gamma", burstiness=burstiness))
    assert statistics.fmean(gaps) == pytest.approx(0.1, rel=0.03)
    cv = statistics.stdev(gaps) / statistics.fmean(gaps)
    assert cv == pytest.approx(1 / math.sqrt(burstiness), rel=0.05)


def test_constant_schedule_is_evenly_spaced() -> None:
    assert open_loop(LoadShape(rate=4.0, arrival="constant"), 0, 5, None) == [0.0, 0.25, 0.5, 0.75, 1.0]


def test_same_seed_same_schedule_other_seed_other_schedule() -> None:
    load = LoadShape(rate=5.0)
    assert open_loop(load, 1, 50, None) == open_loop(load, 1, 50, None)
    assert open_loop(load, 1, 50, None) != open_loop(load, 2, 50, None)


def test_duration_bound_stops_at_the_duration() -> None:
    offsets = open_loop(LoadShape(rate=100.0), 0, None, 2.0)
    assert offsets[-1] < 2.0
    assert len(offsets) == pytest.approx(200, rel=0.2)
    assert len(open_loop(LoadShape(rate=100.0), 0, 10, 2.0)) == 10
