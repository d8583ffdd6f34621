"""Print lockgate bench's and aiperf's TTFT / TPOT / E2E percentiles side by side (markdown), for docs/bench.md.

``python scripts/compare_aiperf.py LOCKGATE_SUMMARY.json AIPERF_PROFILE_EXPORT.json``
aiperf's "inter token latency" is (request latency - TTFT) / (OSL - 1): lockgate's TPOT.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

PAIRS = (("TTFT", "ttft", "time_to_first_token"), ("TPOT (aiperf: ITL)", "tpot", "inter_token_latency"),
         ("E2E (aiperf: request latency)", "e2e", "request_latency"))
PCTS = (("p50", "p50"), ("p90", "p90"), ("p99", "p99"), ("mean", "avg"))


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
    main(Path(sys.argv[1]), Path(sys.argv[2]))
