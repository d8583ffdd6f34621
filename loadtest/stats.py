"""Summary statistics from raw samples (no histograms, no bucketing)."""

from __future__ import annotations

import math
from collections.abc import Sequence

import msgspec

PERCENTILES = (50.0, 90.0, 95.0, 99.0, 99.9)


class Stats(msgspec.Struct, frozen=True):
    count: int
    mean: float
    std: float
    min: float
    p50: float
    p90: float
    p95: float
    p99: float
    p99_9: float
    max: float


def percentile(sorted_values: Sequence[float], p: float) -> float:
    """Linear interpolation between closest ranks (numpy's default ``linear`` method)."""
    if not sorted_values:
        raise ValueError("no samples")
    pos = (len(sorted_values) - 1) * p / 100
    lo = math.floor(pos)
    hi = min(lo + 1, len(sorted_values) - 1)
    return sorted_values[lo] + (sorted_values[hi] - sorted_values[lo]) * (pos - lo)


def describe(values: Sequence[float]) -> Stats | None:
    if not values:
        return None
    xs = sorted(values)
    n = len(xs)
    mean = math.fsum(xs) / n
    std = math.sqrt(math.fsum((x - mean) ** 2 for x in xs) / (n - 1)) if n > 1 else 0.0
    p50, p90, p95, p99, p999 = (percentile(xs, p) for p in PERCENTILES)
    return Stats(count=n, mean=mean, std=std, min=xs[0], p50=p50, p90=p90, p95=p95, p99=p99, p99_9=p999,
                 max=xs[-1])
