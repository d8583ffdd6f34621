"""Print lockgate bench's and aiperf's TTFT / TPOT / E2E percentiles side by side (markdown), for docs/bench.md.

    python scripts/compare_aiperf.py --lockgate L1/summary.json ... --aiperf A1/profile_export_aiperf.json ...
    python scripts/compare_aiperf.py --overhead --lockgate L/summary.json --aiperf ZERO/profile_export_aiperf.json

With several runs of each (repeats, interleaved in time), each cell is the median over the runs, and the range
across runs follows in brackets. aiperf's "inter token latency" is (request latency - TTFT) / (OSL - 1):
lockgate's TPOT.
"""

from __future__ import annotations

import argparse
import json
import statistics
from pathlib import Path
from typing import Any

PAIRS = (("TTFT", "ttft", "time_to_first_token"), ("TPOT (aiperf: ITL)", "tpot", "inter_token_latency"),
         ("E2E (aiperf: request latency)", "e2e", "request_latency"))
STATS = (("p50", "p50"), ("p90", "p90"), ("p99", "p99"), ("mean", "avg"))


def _load(paths: list[Path]) -> list[dict[str, Any]]:
    return [json.loads(p.read_text()) for p in paths]


def _cell(values: list[float]) -> str:
    mid = statistics.median(values)
    return f"{mid:.2f}" if len(values) == 1 else f"{mid:.2f} [{min(values):.2f}–{max(values):.2f}]"


def compare(ours: list[dict[str, Any]], theirs: list[dict[str, Any]]) -> None:
    points = [o["points"][0] for o in ours]
    print(f"lockgate bench: {len(points)} run(s) of {points[0]['completed']} measured requests, "
          f"{statistics.median(p['request_throughput'] for p in points):.2f} req/s; aiperf: {len(theirs)} run(s) of "
          f"{theirs[0]['request_count']['avg']:.0f} requests, "
          f"{statistics.median(t['request_throughput']['avg'] for t in theirs):.2f} req/s\n")
    print("| metric | stat | lockgate bench (ms) | aiperf (ms) | difference of medians |")
    print("|---|---|---:|---:|---:|")
    for label, mine, other in PAIRS:
        for name, other_name in STATS:
            a = [p["stats"][mine][name] * 1000 for p in points]
            b = [t[other][other_name] for t in theirs]
            diff = (statistics.median(a) - statistics.median(b)) / statistics.median(b)
            print(f"| {label} | {name} | {_cell(a)} | {_cell(b)} | {diff:+.1%} |")


def overhead(ours: list[dict[str, Any]], theirs: list[tuple[str, dict[str, Any]]]) -> None:
    """Each tool against a zero-latency target: lockgate's self-check, and aiperf runs at the same loads."""
    print("| client against a zero-latency target | load | req/s | TTFT p50 (ms) | TTFT p90 (ms) | TTFT p99 (ms) |")
    print("|---|---|---:|---:|---:|---:|")
    for summary in ours:
        check = summary["self_check"]
        for name, p in (("lockgate bench, self-check: capacity", check["capacity"]),
                        ("lockgate bench, self-check: at the run's rate", check["at_load"])):
            if p is not None:
                st = p["stats"]["ttft"]
                print(f"| {name} | {p['x_name']}={p['x']:.3g} | {p['request_throughput']:.1f} | "
                      f"{st['p50'] * 1000:.2f} | {st['p90'] * 1000:.2f} | {st['p99'] * 1000:.2f} |")
    for name, d in theirs:
        phase = next(p for p in d["input_config"]["phases"] if p["kind"] == "profiling")
        load = (f"concurrency={phase['concurrency']}" if phase["type"] == "concurrency"
                else f"rate={phase.get('request_rate', phase.get('rate', '?'))}")
        t = d["time_to_first_token"]
        print(f"| aiperf ({name}) | {load} | {d['request_throughput']['avg']:.1f} | {t['p50']:.2f} | "
              f"{t['p90']:.2f} | {t['p99']:.2f} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--lockgate", nargs="+", type=Path, required=True, help="summary.json files")
    parser.add_argument("--aiperf", nargs="*", type=Path, default=[], help="profile_export_aiperf.json files")
    parser.add_argument("--overhead", action="store_true", help="compare the tools against a zero-latency target")
    args = parser.parse_args()
    if args.overhead:
        overhead(_load(args.lockgate), [(p.parent.name, json.loads(p.read_text())) for p in args.aiperf])
    else:
        compare(_load(args.lockgate), _load(args.aiperf))


if __name__ == "__main__":
    main()
