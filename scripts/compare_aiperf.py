"""Print lockgate bench's and aiperf's TTFT / TPOT / E2E percentiles side by side (markdown), for docs/bench.md.

``python scripts/compare_aiperf.py LOCKGATE_SUMMARY.json AIPERF_PROFILE_EXPORT.json``, or
``python scripts/compare_aiperf.py --overhead LOCKGATE_SUMMARY.json AIPERF_ZERO_EXPORT.json...`` for each tool's own
overhead against a zero-latency target.
aiperf's "inter token latency" is (request latency - TTFT) / (OSL - 1): lockgate's TPOT.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

PAIRS = (("TTFT", "ttft", "time_to_first_token"), ("TPOT (aiperf: ITL)", "tpot", "inter_token_latency"),
         ("E2E (aiperf: request latency)", "e2e", "request_latency"))
PCTS = (("p50", "p50"), ("p90", "p90"), ("p99", "p99"), ("mean", "avg"))


def overhead(lockgate_path: Path, aiperf_paths: list[Path]) -> None:
    """Each tool against a zero-latency target: lockgate's self-check, and aiperf runs at the same loads."""
    check = json.loads(lockgate_path.read_text())["self_check"]
    print("| client against a zero-latency target | load | req/s | TTFT p50 (ms) | TTFT p90 (ms) | TTFT p99 (ms) |")
    print("|---|---|---:|---:|---:|---:|")
    for name, p in (("lockgate bench (self-check: capacity)", check["capacity"]),
                    ("lockgate bench (self-check: at the run's rate)", check["at_load"])):
        if p is None:
            continue
        st = p["stats"]["ttft"]
        print(f"| {name} | {p['x_name']}={p['x']:.3g} | {p['request_throughput']:.1f} | {st['p50'] * 1000:.2f} | "
              f"{st['p90'] * 1000:.2f} | {st['p99'] * 1000:.2f} |")
    for path in aiperf_paths:
        d = json.loads(path.read_text())
        phase = next(p for p in d["input_config"]["phases"] if p["kind"] == "profiling")
        load = (f"concurrency={phase['concurrency']}" if phase["type"] == "concurrency"
                else f"rate={phase.get('request_rate', phase.get('rate', '?'))}")
        t = d["time_to_first_token"]
        print(f"| aiperf ({path.parent.name}) | {load} | {d['request_throughput']['avg']:.1f} | {t['p50']:.2f} | "
              f"{t['p90']:.2f} | {t['p99']:.2f} |")


def main(lockgate_path: Path, aiperf_path: Path) -> None:
    ours = json.loads(lockgate_path.read_text())["points"][0]
    theirs = json.loads(aiperf_path.read_text())
    print(f"lockgate: {ours['completed']} requests, {ours['request_throughput']:.2f} req/s; "
          f"aiperf: {theirs['request_count']['avg']:.0f} requests, {theirs['request_throughput']['avg']:.2f} req/s\n")
    print("| metric | stat | lockgate bench (ms) | aiperf (ms) | difference |")
    print("|---|---|---:|---:|---:|")
    for label, mine, other in PAIRS:
        for name, other_name in PCTS:
            a = ours["stats"][mine][name] * 1000
            b = theirs[other][other_name]
            print(f"| {label} | {name} | {a:.2f} | {b:.2f} | {(a - b) / b:+.1%} |")


if __name__ == "__main__":
    if sys.argv[1] == "--overhead":
        overhead(Path(sys.argv[2]), [Path(p) for p in sys.argv[3:]])
    else:
        main(Path(sys.argv[1]), Path(sys.argv[2]))
