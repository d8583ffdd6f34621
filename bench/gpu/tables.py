"""Markdown tables for docs/gpu-bakeoff.md from lockgate bench's summary.json files.

    python3 bench/gpu/tables.py RUN/summary.json [...] [--baseline vllm-direct]
Per target and load point: TTFT / TPOT / ITL / E2E percentiles (ms), throughput, goodput, requests per hour, and,
when a baseline target is named, each target's output tokens/s and p50 TTFT against it at the same point.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

REFERENCE_REQ_PER_HOUR = 13_558  # FastAPI + static batching, 2x RTX 2000 Ada, Qwen2.5-1.5B INT4, 100 users


def ms(p: dict[str, Any], name: str, q: str) -> str:
    st = p["stats"].get(name)
    return f"{st[q] * 1000:.1f}" if st else "-"


def load(p: dict[str, Any]) -> str:
    return f"c={p['x']:g}" if p["x_name"] == "concurrency" else f"{p['x']:.1f} req/s"


def tables(points: list[dict[str, Any]], baseline: str | None) -> str:
    out = ["| target | load | ok/sent | TTFT p50 / p90 / p99 | TPOT p50 / p99 | ITL p50 / p99 | E2E p50 / p99 "
           "| req/s | output tok/s | goodput req/s | req/hour |",
           "|---|---|---|---|---|---|---|---:|---:|---:|---:|"]
    for p in points:
        out.append(
            f"| {p['target']} | {load(p)} | {p['completed']}/{p['requests']} "
            f"| {ms(p, 'ttft', 'p50')} / {ms(p, 'ttft', 'p90')} / {ms(p, 'ttft', 'p99')} "
            f"| {ms(p, 'tpot', 'p50')} / {ms(p, 'tpot', 'p99')} | {ms(p, 'itl', 'p50')} / {ms(p, 'itl', 'p99')} "
            f"| {ms(p, 'e2e', 'p50')} / {ms(p, 'e2e', 'p99')} | {p['request_throughput']:.2f} "
            f"| {p['output_token_throughput']:,.0f} | {p['goodput']:.2f} | {p['request_throughput'] * 3600:,.0f} |")
    if baseline:
        base = {p["x"]: p for p in points if p["target"] == baseline}
        out += ["", f"| target | load | output tok/s vs {baseline} | p50 TTFT added (ms) | req/hour vs "
                f"{REFERENCE_REQ_PER_HOUR:,} reference |", "|---|---|---:|---:|---:|"]
        for p in points:
            b = base.get(p["x"])
            if p["target"] == baseline or b is None:
                continue
            ttft, base_ttft = p["stats"].get("ttft"), b["stats"].get("ttft")
            added = f"{(ttft['p50'] - base_ttft['p50']) * 1000:+.1f}" if ttft and base_ttft else "-"
            kept = (f"{p['output_token_throughput'] / b['output_token_throughput']:.1%}"
                    if b["output_token_throughput"] else "-")
            out.append(f"| {p['target']} | {load(p)} | {kept} "
                       f"| {added} | {p['request_throughput'] * 3600 / REFERENCE_REQ_PER_HOUR:.1f}x |")
    return "\n".join(out) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("summaries", nargs="+", type=Path)
    parser.add_argument("--baseline")
    args = parser.parse_args()
    points = [p for path in args.summaries for p in json.loads(path.read_text())["points"]]
    print(tables(points, args.baseline))


if __name__ == "__main__":
    main()
