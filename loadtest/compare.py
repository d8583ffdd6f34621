"""``lockgate bench compare A.json B.json``: the differences between two saved runs, point by point."""

from __future__ import annotations

from collections.abc import Sequence

from loadtest.bench import BenchResult
from loadtest.summary import PointSummary

ROWS: tuple[tuple[str, str, float], ...] = (
    ("req/s", "request_throughput", 1.0), ("out tok/s", "output_token_throughput", 1.0),
    ("goodput req/s", "goodput", 1.0), ("failed", "failed", 1.0),
    ("TTFT p50 ms", "ttft.p50", 1000.0), ("TTFT p99 ms", "ttft.p99", 1000.0),
    ("TTFT_sched p99 ms", "ttft_sched.p99", 1000.0), ("TPOT p50 ms", "tpot.p50", 1000.0),
    ("TPOT p99 ms", "tpot.p99", 1000.0), ("ITL p50 ms", "itl.p50", 1000.0), ("ITL p99 ms", "itl.p99", 1000.0),
    ("E2E p50 ms", "e2e.p50", 1000.0), ("E2E p99 ms", "e2e.p99", 1000.0),
)


def value(p: PointSummary, path: str) -> float | None:
    if "." not in path:
        return float(getattr(p, path))
    name, field = path.split(".")
    st = p.stats.get(name)
    return None if st is None else float(getattr(st, field))


def pairs(a: BenchResult, b: BenchResult) -> list[tuple[PointSummary, PointSummary]]:
    """Same target name and point; with one target in each file, that target's points pair up by point."""
    keyed = {(p.target, p.point): p for p in b.points}
    out = [(p, keyed[(p.target, p.point)]) for p in a.points if (p.target, p.point) in keyed]
    if out:
        return out
    a_targets, b_targets = {p.target for p in a.points}, {p.target for p in b.points}
    if len(a_targets) == 1 and len(b_targets) == 1:
        by_point = {p.point: p for p in b.points}
        return [(p, by_point[p.point]) for p in a.points if p.point in by_point]
    return []


def _cell(v: float | None) -> str:
    return "-" if v is None else f"{v:.3f}" if abs(v) < 100 else f"{v:.1f}"


def render(a: BenchResult, b: BenchResult, names: Sequence[str] = ("A", "B")) -> str:
    matched = pairs(a, b)
    if not matched:
        return "no comparable points: the runs share no target name and are not single-target runs\n"
    lines = []
    for pa, pb in matched:
        lines.append(f"{pa.target} vs {pb.target} at {pa.x_name}={pa.x:g}"
                     + ("" if (pa.x_name, pa.x) == (pb.x_name, pb.x) else f" (B: {pb.x_name}={pb.x:g})"))
        rows = [("metric", names[0], names[1], "B-A", "change")]
        for label, path, scale in ROWS:
            va, vb = value(pa, path), value(pb, path)
            va = None if va is None else va * scale
            vb = None if vb is None else vb * scale
            diff = None if va is None or vb is None else vb - va
            change = f"{diff / va:+.1%}" if diff is not None and va else "-"
            rows.append((label, _cell(va), _cell(vb), _cell(diff), change))
        widths = [max(len(r[i]) for r in rows) for i in range(5)]
        lines.extend("  " + "  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in
                                      enumerate(zip(r, widths, strict=True))) for r in rows)
        lines.append("")
    return "\n".join(lines)
