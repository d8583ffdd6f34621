"""``lockgate bench`` and ``lockgate bench compare``: argparse wiring only; the work is in loadtest.bench."""

from __future__ import annotations

import argparse
import datetime as dt
import os
import sys
from pathlib import Path

import msgspec

from loadtest.config import SLO, BenchSpec, DatasetSpec, Exclusion, LengthDist, LoadShape, Target

EXAMPLES = """\
examples:
  # closed loop, 4 in flight, 200 requests of 128 words in / 64 tokens out, against a local gateway
  lockgate bench --target http://127.0.0.1:8000/v1 --model sim-small -c 4 -n 200 --input-len 128 --output-len 64

  # two targets, same seeded Poisson schedule (5 req/s, 60 s), 2 rounds in alternating order, with SLOs
  lockgate bench --target http://127.0.0.1:8000/v1,label=vllm --target http://127.0.0.1:8001/v1,label=sglang \\
      --model llama --rate 5 --duration 60 --rounds 2 --warmup 5s --slo-ttft-ms 200 --slo-tpot-ms 50

  # a rate sweep with bursty (gamma) arrivals and a ShareGPT file, writing to ./out
  lockgate bench --target http://127.0.0.1:8000/v1 --model m --rate 1,2,4,8 --arrival gamma --burstiness 0.5 \\
      -n 300 --dataset sharegpt --dataset-path sharegpt.json --output-len none --out out

  # the gateway's added latency, request by request: each request goes to the engine, then through lockgate
  # (the first target rotating), in one shared run, so the engine's drift between runs cancels out
  lockgate bench --target http://127.0.0.1:8100/v1,label=direct --target http://127.0.0.1:8000/v1,label=lockgate \
      --model m -c 1 -d 120 --warmup 5s --interleave

  # diff two saved runs
  lockgate bench compare out-a/summary.json out-b/summary.json

outputs (in --out): requests.jsonl (one row per request: raw timeline + derived metrics), summary.json,
summary.csv, report.html (self-contained, offline). Metric definitions: docs/bench.md.
"""


def _numbers(text: str, kind: type[int] | type[float]) -> list[int | float]:
    try:
        return [kind(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated numbers, got {text!r}") from None


def parse_length(text: str) -> LengthDist | None:
    """``128``, ``uniform:MEAN:HALF_WIDTH``, ``normal:MEAN:STD`` or ``none``."""
    if text == "none":
        return None
    parts = text.split(":")
    try:
        if len(parts) == 1:
            return LengthDist(kind="fixed", mean=int(parts[0]))
        if len(parts) == 3 and parts[0] in ("uniform", "normal"):
            return LengthDist(kind=parts[0], mean=int(parts[1]), spread=float(parts[2]))  # type: ignore[arg-type]
    except (ValueError, msgspec.ValidationError):
        pass
    raise argparse.ArgumentTypeError(f"bad length {text!r}: use N, uniform:MEAN:HALF_WIDTH, normal:MEAN:STD or none")


def parse_exclusion(text: str) -> Exclusion:
    """``10`` (requests) or ``5s`` (seconds of schedule)."""
    try:
        return Exclusion(seconds=float(text[:-1])) if text.endswith("s") else Exclusion(requests=int(text))
    except (ValueError, msgspec.ValidationError):
        raise argparse.ArgumentTypeError(f"bad exclusion {text!r}: use a request count (10) or seconds (5s)") from None


def parse_target(text: str, model: str | None, api_key: str | None) -> Target:
    """``URL[,model=M][,label=L][,api-key=K][,api-key-env=VAR]``."""
    url, *options = text.split(",")
    fields: dict[str, str | None] = {"model": model, "label": "", "api_key": api_key}
    for opt in options:
        key, sep, val = opt.partition("=")
        key = key.strip().replace("-", "_")
        if not sep or key not in ("model", "label", "api_key", "api_key_env"):
            raise argparse.ArgumentTypeError(f"bad target option {opt!r} in {text!r}")
        if key == "api_key_env":
            fields["api_key"] = os.environ.get(val)
        else:
            fields[key] = val
    if not fields["model"]:
        raise argparse.ArgumentTypeError(f"target {url!r} has no model: give --model or ,model=NAME")
    return Target(base_url=url, model=str(fields["model"]), label=fields["label"] or "", api_key=fields["api_key"])


def _seconds(ms: float | None) -> float | None:
    return None if ms is None else ms / 1000


def spec_from_args(args: argparse.Namespace) -> BenchSpec:
    if not args.target:
        raise argparse.ArgumentTypeError("give at least one --target")
    if (args.concurrency is None) == (args.rate is None):
        raise argparse.ArgumentTypeError("give either --concurrency (closed loop) or --rate (open loop)")
    if args.num_requests is None and args.duration is None:
        raise argparse.ArgumentTypeError("bound the run with --num-requests or --duration")
    if args.concurrency is not None:
        loads = tuple(LoadShape(concurrency=int(c)) for c in args.concurrency)
    else:
        loads = tuple(LoadShape(rate=float(r), arrival=args.arrival, burstiness=args.burstiness,
                                max_concurrency=args.max_concurrency) for r in args.rate)
    try:
        return BenchSpec(
            targets=tuple(parse_target(t, args.model, args.api_key) for t in args.target), loads=loads,
            dataset=DatasetSpec(kind=args.dataset, input_len=args.input_len, output_len=args.output_len,
                                path=args.dataset_path, prefix_len=args.prefix_len, num_prefixes=args.num_prefixes,
                                seed=args.dataset_seed),
            num_requests=args.num_requests, duration_s=args.duration, warmup=args.warmup, cooldown=args.cooldown,
            rounds=args.rounds, concurrent_targets=args.concurrent_targets, interleave=args.interleave,
            endpoint=args.endpoint,
            ignore_eos=not args.no_ignore_eos,
            slo=SLO(ttft_s=_seconds(args.slo_ttft_ms), tpot_s=_seconds(args.slo_tpot_ms),
                    e2e_s=_seconds(args.slo_e2e_ms)),
            seed=args.seed, processes=args.processes, timeout_s=args.timeout, http_client=args.http_client,
            tokenizer=args.tokenizer,
            scrape_metrics=args.scrape_metrics, self_check=not args.no_self_check)
    except (ValueError, msgspec.ValidationError) as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _cmd_run(args: argparse.Namespace) -> int:
    from loadtest.bench import run_bench
    from loadtest.output import files, html, table

    try:
        spec = spec_from_args(args)
    except argparse.ArgumentTypeError as exc:
        print(f"lockgate bench: {exc}", file=sys.stderr)
        return 2
    out = Path(args.out or Path("bench-results") / dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%SZ"))
    out.mkdir(parents=True, exist_ok=True)
    progress = args.progress if args.progress is not None else sys.stderr.isatty()
    with (out / "requests.jsonl").open("wb") as jsonl:
        result = run_bench(spec, sink=files.JsonlSink(jsonl), progress=progress)
    files.write_summary(result, out / "summary.json")
    files.write_csv(result, out / "summary.csv")
    (out / "report.html").write_text(html.render(result))
    print(table.render(result.points))
    if result.paired:
        print(table.paired_lines(result.paired))
    if result.self_check is not None:
        print(table.self_check_lines(result.self_check))
    print(f"wrote {out}/requests.jsonl, summary.json, summary.csv, report.html")
    failed = sum(p.failed for p in result.points)
    return 1 if failed and args.fail_on_error else 0


def _cmd_compare(args: argparse.Namespace) -> int:
    from loadtest.compare import render
    from loadtest.output.files import read_summary

    a, b = read_summary(Path(args.a)), read_summary(Path(args.b))
    sys.stdout.write(render(a, b, (Path(args.a).parent.name or "A", Path(args.b).parent.name or "B")))
    return 0


def add_bench_parser(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    bench = subparsers.add_parser(
        "bench", help="replay the same seeded load against OpenAI-compatible targets and compare them",
        description="Load-test OpenAI-compatible targets (lockgate, vLLM, SGLang, TensorRT-LLM servers) with one "
                    "seeded schedule and prompt set, and report TTFT, TPOT, ITL, E2E, throughput and goodput.",
        formatter_class=argparse.RawDescriptionHelpFormatter, epilog=EXAMPLES)
    bench.set_defaults(func=_cmd_run)
    t = bench.add_argument_group("targets")
    t.add_argument("--target", action="append", metavar="URL[,model=M][,label=L][,api-key-env=VAR]",
                   help="base URL ending in /v1; repeat for several targets")
    t.add_argument("--model", help="model for targets that name none")
    t.add_argument("--api-key", help="bearer key for targets that name none (prefer ,api-key-env=VAR)")
    t.add_argument("--endpoint", choices=["chat", "completions"], default="chat")
    t.add_argument("--rounds", type=int, default=1, help="runs per target per point, order reversed each round")
    t.add_argument("--concurrent-targets", action="store_true", help="send each request to all targets at once")
    t.add_argument("--interleave", action="store_true",
                   help="closed loop: each slot sends each request to every target in turn, one shared run; "
                        "reports each target's added TTFT/TPOT/E2E against the first, request by request")
    ld = bench.add_argument_group("load")
    ld.add_argument("-c", "--concurrency", type=lambda s: _numbers(s, int), metavar="N[,N...]",
                    help="closed loop; several values sweep")
    ld.add_argument("-r", "--rate", type=lambda s: _numbers(s, float), metavar="R[,R...]",
                    help="open loop, requests/s; several values sweep")
    ld.add_argument("--arrival", choices=["poisson", "gamma", "constant"], default="poisson")
    ld.add_argument("--burstiness", type=float, default=1.0, help="gamma shape: 1 = Poisson, <1 burstier")
    ld.add_argument("--max-concurrency", type=int, help="open loop: cap requests in flight in the client")
    ld.add_argument("-n", "--num-requests", type=int, help="requests per point (count bound)")
    ld.add_argument("-d", "--duration", type=float, help="schedule seconds per point (duration bound)")
    ld.add_argument("--warmup", type=parse_exclusion, default=Exclusion(), help="excluded at the start: N or Ns")
    ld.add_argument("--cooldown", type=parse_exclusion, default=Exclusion(), help="excluded at the end: N or Ns")
    ld.add_argument("--seed", type=int, default=0, help="arrival schedule seed")
    ld.add_argument("--processes", type=int, default=0, help="client processes (0: by load)")
    ld.add_argument("--timeout", type=float, default=600.0, help="per-request timeout, s")
    ld.add_argument("--http-client", choices=["h1", "httpx"], default="h1",
                    help="h1: lean built-in HTTP/1.1 client (default); httpx: for proxies")
    ds = bench.add_argument_group("dataset")
    ds.add_argument("--dataset", choices=["synthetic", "sharegpt", "shared-prefix"], default="synthetic")
    ds.add_argument("--dataset-path", help="ShareGPT-format JSON file")
    ds.add_argument("--dataset-seed", type=int, default=0)
    ds.add_argument("--input-len", type=parse_length, default=LengthDist(mean=128),
                    help="N | uniform:MEAN:HALF_WIDTH | normal:MEAN:STD (words)")
    ds.add_argument("--output-len", type=parse_length, default=LengthDist(mean=128),
                    help="max_tokens: N | uniform:... | normal:... | none (ShareGPT reply lengths)")
    ds.add_argument("--no-ignore-eos", action="store_true", help="do not send ignore_eos")
    ds.add_argument("--prefix-len", type=int, default=512, help="shared-prefix: prefix words")
    ds.add_argument("--num-prefixes", type=int, default=4, help="shared-prefix: distinct prefixes")
    ds.add_argument("--tokenizer", default="words", help="counts tokens without usage: words | chars4 | FILE.json")
    rep = bench.add_argument_group("slo and output")
    rep.add_argument("--slo-ttft-ms", type=float)
    rep.add_argument("--slo-tpot-ms", type=float)
    rep.add_argument("--slo-e2e-ms", type=float)
    rep.add_argument("--out", help="output directory (default bench-results/<UTC time>)")
    rep.add_argument("--scrape-metrics", action="store_true", help="diff each target's /metrics over the run")
    rep.add_argument("--no-self-check", action="store_true", help="skip the zero-latency client check")
    rep.add_argument("--progress", action=argparse.BooleanOptionalAction, default=None,
                     help="progress bar (default: when stderr is a terminal)")
    rep.add_argument("--fail-on-error", action="store_true", help="exit 1 when any request failed")

    sub = bench.add_subparsers(dest="bench_command", metavar="SUBCOMMAND")
    cmp = sub.add_parser("compare", help="diff two saved runs (summary.json files)",
                         epilog="example:\n  lockgate bench compare runs/a/summary.json runs/b/summary.json",
                         formatter_class=argparse.RawDescriptionHelpFormatter)
    cmp.add_argument("a")
    cmp.add_argument("b")
    cmp.set_defaults(func=_cmd_compare)
