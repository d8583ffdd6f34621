"""Added latency from interleaved runs (run.sh engine with BAKE_INTERLEAVE=1), pooled over runs, per load point.

    python3 -m bench.gpu.paired_table A-requests-slim.jsonl.xz [B-...] [--baseline vllm-direct]

Each request of an interleaved run went to every target in turn, so a target's copy and the baseline's met vLLM in
the same moment; `lockgate bench` reports each run's pairs in its summary.json (`paired`), and this pools the runs'
slim rows (slim_requests.py) into one Markdown table: pairs, the TTFT p50 added (target's p50 minus the baseline's
over the same requests), the median of the per-request differences with its distribution-free 95% interval, the
TPOT and E2E p50 added, the tokens/s kept as the pairs' mean E2E says (`kept`), and lockgate's own queue and relay
means (its response headers) beside them.
"""

from __future__ import annotations

import argparse
import math
import statistics
import sys
from collections import defaultdict
from pathlib import Path

from bench.gpu.slim_requests import Slim, read
from loadtest.paired import paired_stat
from loadtest.stats import percentile

Key = tuple[int, str, int, int]
"""(file, run, round, index): one request of one interleaved run, whatever the target."""


def _tpot(row: Slim) -> float | None:
    if row.ttft_ms is None or row.n_out is None or row.n_out < 2:
        return None
    return (row.e2e_ms - row.ttft_ms) / (row.n_out - 1)


def kept(base: list[float], mine: list[float]) -> tuple[float, float, float]:
    """Tokens/s kept, from the pairs' E2E (same prompts, same output lengths): a closed loop at concurrency c
    serves c x tokens / mean E2E, so the target keeps mean(baseline E2E) / mean(its E2E); with the bounds from
    the paired differences' 95% t-interval (normal above 30 pairs)."""
    n = len(base)
    b = statistics.fmean(base)
    diffs = [m - a for a, m in zip(base, mine, strict=True)]
    d = statistics.fmean(diffs)
    half = 1.96 * statistics.stdev(diffs) / math.sqrt(n) if n > 1 else 0.0
    return b / (b + d), b / (b + d + half), b / (b + d - half)


def _mean(values: list[float]) -> str:
    return f"{statistics.fmean(values):.2f}" if values else "-"


def table(files: list[list[Slim]], baseline: str) -> list[str]:
    by: dict[tuple[str, str], dict[Key, Slim]] = defaultdict(dict)  # (load, target) -> requests
    for n, rows in enumerate(files):
        for row in rows:
            if row.measured and row.outcome == "ok" and row.ttft_ms is not None:
                by[(row.load or f"point {row.point}", row.target)][(n, row.run, row.round, row.index)] = row
    out = [f"| load | target | pairs | TTFT p50 added | TTFT median diff (95% CI) | TPOT p50 added | "
           f"E2E p50 added | tokens/s kept, from mean E2E (95% CI) | {baseline} TTFT p50 | queue mean | relay mean |",
           "|---|---|---:|---:|---|---:|---:|---|---:|---:|---:|"]
    for (load, target), mine in sorted(by.items()):
        base = by.get((load, baseline))
        if target == baseline or base is None:
            continue
        keys = sorted(mine.keys() & base.keys())
        if not keys:
            continue
        b_ttft = [base[k].ttft_ms or 0.0 for k in keys]
        ttft = paired_stat(b_ttft, [mine[k].ttft_ms or 0.0 for k in keys])
        ci = f" ({ttft.ci_low:+.2f} to {ttft.ci_high:+.2f})" if ttft.ci_low is not None else ""
        tpots = [(t0, t1) for k in keys if (t0 := _tpot(base[k])) is not None and (t1 := _tpot(mine[k])) is not None]
        tpot = paired_stat([a for a, _ in tpots], [b for _, b in tpots]).p50_added if tpots else float("nan")
        b_e2e, m_e2e = [base[k].e2e_ms for k in keys], [mine[k].e2e_ms for k in keys]
        ratio, lo, hi = kept(b_e2e, m_e2e)
        out.append(f"| {load} | {target} | {len(keys)} | {ttft.p50_added:+.2f} | "
                   f"{ttft.median_diff:+.2f}{ci} | "
                   f"{tpot:+.3f} | {paired_stat(b_e2e, m_e2e).p50_added:+.1f} | "
                   f"{ratio:.1%} ({lo:.1%}-{hi:.1%}) | "
                   f"{percentile(sorted(b_ttft), 50):.2f} | "
                   f"{_mean([v for k in keys if (v := mine[k].split.get('queue')) is not None])} | "
                   f"{_mean([v for k in keys if (v := mine[k].split.get('relay')) is not None])} |")
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("file", type=Path, nargs="+", help="slim rows (slim_requests.py slim) of interleaved runs")
    parser.add_argument("--baseline", default="vllm-direct")
    args = parser.parse_args(argv)
    lines = table([read(f) for f in args.file], args.baseline)
    print("\n".join(lines))
    return 0 if len(lines) > 2 else 1


if __name__ == "__main__":
    sys.exit(main())
