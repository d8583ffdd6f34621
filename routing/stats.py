"""Small statistics for the experiment readout: bounded reservoirs, percentiles, paired differences."""

from __future__ import annotations

import math
import random
import statistics

import msgspec

# Two-sided 95% Student t quantiles for small samples; the normal quantile beyond.
_T95 = {1: 12.706, 2: 4.303, 3: 3.182, 4: 2.776, 5: 2.571, 6: 2.447, 7: 2.365, 8: 2.306, 9: 2.262, 10: 2.228,
        12: 2.179, 15: 2.131, 20: 2.086, 25: 2.060, 30: 2.042, 40: 2.021, 60: 2.000, 120: 1.980}


def t95(df: int) -> float:
    if df > 120:
        return 1.96
    return _T95[min(k for k in _T95 if k >= df)]


class Reservoir:
    """A uniform sample of at most ``size`` values from a stream (Vitter's algorithm R)."""

    def __init__(self, size: int = 2048, rng: random.Random | None = None) -> None:
        self.size = size
        self.count = 0
        self.values: list[float] = []
        self._rng = rng or random.Random(0)

    def add(self, value: float) -> None:
        self.count += 1
        if len(self.values) < self.size:
            self.values.append(value)
        else:
            j = self._rng.randrange(self.count)
            if j < self.size:
                self.values[j] = value


class Summary(msgspec.Struct, frozen=True):
    n: int
    mean: float | None
    p50: float | None
    p90: float | None
    p99: float | None


def summarize(values: list[float], n: int | None = None) -> Summary:
    if not values:
        return Summary(n or 0, None, None, None, None)
    ordered = sorted(values)

    def pct(q: float) -> float:
        return ordered[min(len(ordered) - 1, max(0, math.ceil(q * len(ordered)) - 1))]

    return Summary(n if n is not None else len(values), statistics.fmean(ordered), pct(0.5), pct(0.9), pct(0.99))


class PairedDifference(msgspec.Struct, frozen=True):
    """shadow - primary over the same requests: mean with a 95% confidence interval."""

    n: int
    mean: float | None
    ci95_low: float | None
    ci95_high: float | None


def paired_difference(primary: list[float], shadow: list[float]) -> PairedDifference:
    diffs = [s - p for p, s in zip(primary, shadow, strict=True)]
    if not diffs:
        return PairedDifference(0, None, None, None)
    mean = statistics.fmean(diffs)
    if len(diffs) < 2:
        return PairedDifference(1, mean, None, None)
    half = t95(len(diffs) - 1) * statistics.stdev(diffs) / math.sqrt(len(diffs))
    return PairedDifference(len(diffs), mean, mean - half, mean + half)
