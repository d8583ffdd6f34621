"""The terminal table printed at the end of a run."""

from __future__ import annotations

from collections.abc import Sequence

from loadtest.paired import PAIRED_METRICS, PairedDiff
from loadtest.selfcheck import SelfCheck
from loadtest.summary import PointSummary


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value * 1000:.2f}"


LATENCY_COLUMNS = (("ttft", "p50"), ("ttft", "p99"), ("ttft_sched", "p99"), ("tpot", "p50"), ("tpot", "p99"),
                   ("itl", "p50"), ("e2e", "p50"), ("e2e", "p99"))


def _stat(p: PointSummary, name: str, field: str) -> str:
    st = p.stats.get(name)
    return _ms(getattr(st, field)) if st is not None else "-"


def render(points: Sequence[PointSummary]) -> str:
    head = ("target", "load", "ok/req", "req/s", "out tok/s", "conc", "goodput", "TTFT p50", "TTFT p99",
            "TTFTs p99", "TPOT p50", "TPOT p99", "ITL p50", "E2E p50", "E2E p99")
    rows: list[tuple[str, ...]] = [head]
    for p in points:
        rows.append((p.target, f"{p.x_name[:4]}={p.x:g}", f"{p.completed}/{p.requests}", f"{p.request_throughput:.2f}",
                     f"{p.output_token_throughput:.1f}", f"{p.achieved_concurrency:.2f}", f"{p.goodput:.2f}",
                     *(_stat(p, name, field) for name, field in LATENCY_COLUMNS)))
    widths = [max(len(r[i]) for r in rows) for i in range(len(head))]
    lines = ["  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(r, widths, strict=True)))
             for r in rows]
    lines.insert(1, "-" * len(lines[0]))
    errors = [f"  {p.target} {p.x_name}={p.x:g}: " + ", ".join(f"{k}={v}" for k, v in sorted(p.errors.items()))
              for p in points if p.errors]
    out = "\n".join(lines) + "\n(latencies in ms; TTFTs = TTFT_sched)\n"
    return out + ("errors:\n" + "\n".join(errors) + "\n" if errors else "")


def self_check_lines(check: SelfCheck) -> str:
    cap = check.capacity
    out = [f"client capacity against a zero-latency target: {cap.request_throughput:.0f} req/s, "
           f"{cap.output_token_throughput:.0f} output tok/s at concurrency {cap.x:g} (the run reached "
           f"{check.needed_rate:.1f} req/s)"]
    if check.at_load is not None:
        p = check.at_load
        out.append(f"client overhead at {p.x:.1f} req/s: " + ", ".join(
            f"{label} p50 {_ms(st.p50)} ms p99 {_ms(st.p99)} ms" for label, name in
            (("TTFT", "ttft"), ("ITL", "itl"), ("send lag", "send_lag")) if (st := p.stats.get(name)) is not None))
    return "\n".join(out)


PAIRED_HEAD = ("target", "vs", "load", "pairs", *(f"{m.upper()} {what}" for m in PAIRED_METRICS
                                                   for what in ("p50 added", "median diff (95% CI)")))


def paired_rows(paired: Sequence[PairedDiff]) -> list[tuple[str, ...]]:
    """One row per (target, point): ms added against the baseline over the same requests."""
    rows = []
    for d in paired:
        cells: list[str] = []
        for name in PAIRED_METRICS:
            st = d.stats.get(name)
            if st is None:
                cells += ["-", "-"]
                continue
            ci = f" ({_ms(st.ci_low)} to {_ms(st.ci_high)})" if st.ci_low is not None else ""
            cells += [f"{st.p50_added * 1000:+.2f}", f"{st.median_diff * 1000:+.2f}{ci}"]
        rows.append((d.target, d.baseline, f"conc={d.x:g}", str(d.pairs), *cells))
    return rows


def paired_lines(paired: Sequence[PairedDiff]) -> str:
    rows = [PAIRED_HEAD, *paired_rows(paired)]
    widths = [max(len(r[i]) for r in rows) for i in range(len(PAIRED_HEAD))]
    lines = ["  ".join(c.ljust(w) if i < 2 else c.rjust(w) for i, (c, w) in enumerate(zip(r, widths, strict=True)))
             for r in rows]
    return ("interleaved: each target against the first, over the same requests (ms)\n" + lines[0] + "\n"
            + "-" * len(lines[0]) + "\n" + "\n".join(lines[1:]) + "\n")
