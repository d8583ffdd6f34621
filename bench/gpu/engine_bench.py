"""`lockgate bench` with vLLM's own view of every run: the engine phase of bench/gpu/run.sh.

    python3 -m bench.gpu.engine_bench --out DIR [--engine-metrics URL] [--condition NAME] -- BENCH ARGS...

BENCH ARGS are `lockgate bench`'s own (targets, -c/-r, -d, --rounds, ...), run exactly as `lockgate bench` runs them
(same schedule, prompts, A B / B A order, warm-up marking, pooled summaries: summary.json, summary.csv,
report.html, requests.jsonl in DIR), with one addition: right before and right after each (target, point, round)
run it snapshots vLLM's /metrics, the bake-off processes' CPU and run-queue figures and the per-CPU counters
(bench/gpu/engine_probe.py), and writes one row per run to DIR/engine.json. bench/gpu/engine_table.py makes the
tables. --condition labels the rows (default: the pin state that bench/gpu/pin.py recorded, `pinned` or `open`).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import sys
from pathlib import Path
from typing import Any

from bench.gpu import engine_probe, pin
from loadtest.bench import BenchResult, phase_processes, phases, redacted
from loadtest.cli import add_bench_parser, spec_from_args
from loadtest.config import BenchSpec
from loadtest.output import files, html, table
from loadtest.paired import PairedDiff, compare_pairs
from loadtest.procs import execute
from loadtest.record import RequestRecord
from loadtest.summary import PointSummary, mark_measured, summarize


def bench_spec(argv: list[str]) -> BenchSpec:
    parser = argparse.ArgumentParser(prog="lockgate")
    add_bench_parser(parser.add_subparsers())
    return spec_from_args(parser.parse_args(["bench", *argv]))


def run(spec: BenchSpec, url: str, condition: str, sink: files.JsonlSink) -> tuple[BenchResult, list[dict[str, Any]]]:
    """loadtest.bench.run_bench's loop, with a snapshot on each side of every run."""
    created = dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
    points: list[PointSummary] = []
    paired: list[PairedDiff] = []
    rows: list[dict[str, Any]] = []
    for point, load in enumerate(spec.loads):
        runs: dict[str, list[list[RequestRecord]]] = {t.name: [] for t in spec.targets}
        for round_ in range(spec.rounds):
            for phase in phases(spec, point, load, round_):
                label = f"{'+'.join(t.name for t in phase.targets)} c={load.concurrency} r={load.rate} r{round_}"
                before = engine_probe.snapshot(url)
                records = execute(spec, phase, processes=phase_processes(spec, phase), label=label, progress=False)
                after = engine_probe.snapshot(url)
                for t in phase.targets:
                    mine = sorted((r for r in records if r.target == t.name), key=lambda r: r.index)
                    mark_measured(mine, spec.warmup, spec.cooldown)
                    runs[t.name].append(mine)
                    sink(mine)
                row = engine_probe.phase_row(before, after, records)
                row.update(condition=condition, target="+".join(t.name for t in phase.targets), point=point,
                           round=round_, x_name="concurrency" if load.concurrency is not None else "rate",
                           x=float(load.concurrency if load.concurrency is not None else load.rate or 0.0))
                rows.append(row)
                c, e = row["client"], row["engine"]
                print(f"{label}: {c['ok']}/{c['requests']} ok, {c['n_out'] / max(c['span_s'], 1e-9):,.0f} tok/s "
                      f"(client), vLLM generation tokens {e.get('vllm:generation_tokens_total', 0):,.0f} "
                      f"in {row['wall_s']:.1f} s", flush=True)
        for t in spec.targets:
            points.append(summarize(t.name, point, load, runs[t.name], spec.slo, None))
        if spec.interleave:
            paired.extend(compare_pairs(spec.targets, point, load, runs))
    return BenchResult(created=created, spec=redacted(spec), points=points, paired=paired), rows


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--engine-metrics", default="http://127.0.0.1:8100/metrics")
    parser.add_argument("--condition")
    parser.add_argument("bench_args", nargs=argparse.REMAINDER)
    args = parser.parse_args()
    argv = args.bench_args[1:] if args.bench_args[:1] == ["--"] else args.bench_args
    spec = bench_spec(argv)
    state = pin.state()
    condition = args.condition or str(state.get("mode", "open"))
    args.out.mkdir(parents=True, exist_ok=True)
    with (args.out / "requests.jsonl").open("wb") as jsonl:
        result, rows = run(spec, args.engine_metrics, condition, files.JsonlSink(jsonl))
    files.write_summary(result, args.out / "summary.json")
    files.write_csv(result, args.out / "summary.csv")
    (args.out / "report.html").write_text(html.render(result))
    (args.out / "engine.json").write_text(json.dumps({"condition": condition, "pin": state, "runs": rows},
                                                     indent=1) + "\n")
    print(table.render(result.points))
    if result.paired:
        print(table.paired_lines(result.paired))
    print(f"wrote {args.out}/requests.jsonl, summary.json, summary.csv, report.html, engine.json")
    return 0


if __name__ == "__main__":
    sys.exit(main())
