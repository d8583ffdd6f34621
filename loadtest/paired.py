"""Added latency measured in pairs: in an interleaved run each request went to every target in turn, so a
target's copy and the baseline's copy of one request met the engine in the same moment. Their difference is
free of the drift between rounds that separate runs of each target carry (docs/bench.md, *Interleaved runs*)."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import msgspec

from loadtest.config import LoadShape, Target
from loadtest.metrics import RequestMetrics, derive
from loadtest.record import RequestRecord
from loadtest.stats import percentile

PAIRED_METRICS = ("ttft", "tpot", "e2e")
CONFIDENCE = 0.95
# Past this many pairs the binomial's normal approximation places the median's bounds within one rank.
EXACT_LIMIT = 1000


class PairedStat(msgspec.Struct, frozen=True, kw_only=True):
    p50_added: float
    """The target's p50 minus the baseline's, over the same requests (seconds)."""
    median_diff: float
    """The median of the per-request differences (target minus baseline)."""
    ci_low: float | None
    """95% distribution-free bounds of that median (order statistics of the differences); None with < 6 pairs."""
    ci_high: float | None


class PairedDiff(msgspec.Struct, frozen=True, kw_only=True):
    target: str
    baseline: str
    point: int
    x: float
    pairs: int
    """Requests (index and round) both targets completed, warm-up and cool-down excluded."""
    stats: dict[str, PairedStat]


def median_bounds(n: int) -> tuple[int, int] | None:
    """0-based ranks (lo, hi) of sorted differences bounding their median at ``CONFIDENCE``."""
    alpha = (1 - CONFIDENCE) / 2
    if n > EXACT_LIMIT:
        k = math.floor((n - 1.959964 * math.sqrt(n)) / 2)
        return (k, n - 1 - k) if k >= 0 else None
    # The largest k with P(Binomial(n, 1/2) < k) <= alpha: [d_(k), d_(n-k+1)] (1-based) covers the median.
    total, cumulative, k = 2 ** n, 0, 0
    while k < n and (cumulative + math.comb(n, k)) / total <= alpha:
        cumulative += math.comb(n, k)
        k += 1
    return (k - 1, n - k) if k >= 1 else None


def _value(m: RequestMetrics, name: str) -> float | None:
    value = getattr(m, name)
    return None if value is None else float(value)


def paired_stat(base: Sequence[float], mine: Sequence[float]) -> PairedStat:
    """``mine[i]`` against ``base[i]``, one request each (any unit: the stat comes back in it)."""
    diffs = sorted(b - a for a, b in zip(base, mine, strict=True))
    bounds = median_bounds(len(diffs))
    return PairedStat(p50_added=percentile(sorted(mine), 50) - percentile(sorted(base), 50),
                      median_diff=percentile(diffs, 50),
                      ci_low=diffs[bounds[0]] if bounds else None, ci_high=diffs[bounds[1]] if bounds else None)


def _by_request(runs: Sequence[Sequence[RequestRecord]]) -> dict[tuple[int, int], RequestMetrics]:
    return {(r.round, r.index): derive(r) for run in runs for r in run if r.measured and r.outcome == "ok"}


def compare_pairs(targets: Sequence[Target], point: int, load: LoadShape,
                  runs: Mapping[str, Sequence[Sequence[RequestRecord]]]) -> list[PairedDiff]:
    """Every target after the first against the first, over the requests both completed."""
    if len(targets) < 2:
        return []
    baseline = targets[0].name
    base = _by_request(runs[baseline])
    out = []
    for t in targets[1:]:
        mine = _by_request(runs[t.name])
        stats: dict[str, PairedStat] = {}
        keys = sorted(base.keys() & mine.keys())
        for name in PAIRED_METRICS:
            pairs = [(a, b) for key in keys
                     if (a := _value(base[key], name)) is not None and (b := _value(mine[key], name)) is not None]
            if pairs:
                stats[name] = paired_stat([a for a, _ in pairs], [b for _, b in pairs])
        out.append(PairedDiff(target=t.name, baseline=baseline, point=point,
                              x=float(load.concurrency or load.rate or 0.0), pairs=len(keys), stats=stats))
    return out
