"""Tables of vLLM's own view of each target's runs, from the engine phase's engine.json files.

    python3 bench/gpu/engine_table.py RUN/engine.json [...] [--baseline vllm-direct] [--csv FILE]
    python3 bench/gpu/engine_table.py SETUP-A/*-engine.json SETUP-B/*-engine.json --by-dir --baseline vllm-direct

Rounds of one (condition, target, load) are pooled: histogram means are sum of `_sum` deltas over sum of `_count`
deltas; rates are over the runs' spans (first send to last response end, every request of the run, warm-up
included, as vLLM's counters count them). Client figures are the same requests' means, so the two sides compare
like for like. Series that a target does not expose (the CPU rehearsal's replica) print as "-".

- vLLM TTFT and E2E run from the request's arrival in vLLM's API server to the API server's handling of the first
  / last output; vLLM ITL is the gap between engine-core timestamps of a request's consecutive outputs (the engine's
  step time as the request saw it); vLLM TPOT is `request_time_per_output_token` (decode time / (tokens - 1)).
- batch: generation tokens per engine step; in vLLM: requests in vLLM on average (sum of vLLM E2E / span).
- batch, steps/s and the steps by tokens are as vLLM's API servers record them: each API-server process makes
  one observation per engine step that carried outputs of its own requests, with those requests' tokens only
  (vLLM's IterationStats are built in the API server from the outputs it receives). With --api-server-count N
  a step is counted up to N times, and the steps by tokens show how the requests spread over the API servers,
  not how vLLM split them into steps: c=32 spread 26 / 6 gives half the observations <= 8 and half 17-32.
- CPU columns are cores (CPU-seconds per second of the run); "wait" is the run-queue wait of that role's threads
  (thread-seconds runnable but not running, per second): a thread that must run and cannot.
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
from pathlib import Path
from typing import Any

# Every lease's commands run it as a script (python3 bench/gpu/engine_table.py): the repo root first on the path,
# so it shares engine_probe's series names and tables' load labels instead of repeating them.
sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from bench.gpu.engine_probe import STEP_BUCKET  # kept there as STEP_BUCKET|le=N, per run
from bench.gpu.tables import load

HIST = {"ttft": "vllm:time_to_first_token_seconds", "itl": "vllm:inter_token_latency_seconds",
        "tpot": "vllm:request_time_per_output_token_seconds", "e2e": "vllm:e2e_request_latency_seconds",
        "queue": "vllm:request_queue_time_seconds", "prefill": "vllm:request_prefill_time_seconds",
        "decode": "vllm:request_decode_time_seconds", "step": "vllm:iteration_tokens_total"}
GEN = "vllm:generation_tokens_total"
STEP_BANDS = (8, 16, 32, 128)
"""Step observations by tokens, per API server: <= 8, 9-16, 17-32, 33-128, more (bounds of vLLM's own buckets)."""


def parse_cpulist(text: str) -> list[int]:
    out: list[int] = []
    for part in text.split(","):
        if part:
            lo, _, hi = part.partition("-")
            out.extend(range(int(lo), int(hi or lo) + 1))
    return out


def pooled(runs: list[dict[str, Any]], pin: dict[str, Any]) -> dict[str, Any]:
    span = sum(r["client"]["span_s"] for r in runs) or 1e-9
    wall = sum(r["wall_s"] for r in runs) or 1e-9
    ok = sum(r["client"]["ok"] for r in runs)

    def eng(key: str) -> float:
        return float(sum(r["engine"].get(key, 0.0) for r in runs))

    def hist(name: str) -> float | None:
        n = eng(HIST[name] + "_count")
        return eng(HIST[name] + "_sum") / n if n else None

    def client(name: str, weight: str = "ok") -> float | None:
        got = [(r["client"][name], r["client"][weight]) for r in runs if r["client"].get(name) is not None]
        w = sum(n for _, n in got)
        return sum(v * n for v, n in got) / w if w else None

    def role(name: str, key: str = "cpu") -> float | None:
        got = [(r["roles"][name][key], r["wall_s"]) for r in runs if name in r["roles"]]
        return sum(v * w for v, w in got) / wall if got else None

    def busiest(name: str) -> float | None:
        got = [(max((t["cpu"] for t in r["roles"][name]["threads"]), default=0.0), r["wall_s"])
               for r in runs if name in r["roles"]]
        return sum(v * w for v, w in got) / wall if got else None

    def cpus(which: list[int] | None, key: str = "busy") -> float | None:
        vals = []
        for r in runs:
            xs = r["cpus"][key]
            sel = [xs[i] for i in which if i < len(xs)] if which is not None else xs
            if sel:
                vals.append((sum(sel) / len(sel), r["wall_s"]))
        return sum(v * w for v, w in vals) / wall if vals else None

    def step_mix() -> str | None:
        """Shares of the API servers' step observations by their tokens (STEP_BANDS), as "a/b/c/d/e" percent:
        one per step and API server with outputs in it (see the module's docstring)."""
        total = eng(f"{STEP_BUCKET}|le=+Inf")
        if not total:
            return None
        below = [eng(f"{STEP_BUCKET}|le={float(b)}") for b in STEP_BANDS] + [total]
        bands = zip([0.0, *below[:-1]], below, strict=True)
        return "/".join(f"{(hi - lo) / total:.0%}".rstrip("%") for lo, hi in bands)

    def api_each() -> str | None:
        """Each API-server process's main thread, busiest first (cores): how evenly the connections spread."""
        per_run = []
        for r in runs:
            threads = r["roles"].get("vllm-api", {}).get("threads", [])
            mains = sorted((t["cpu"] for t in threads if "APIServer" in t["thread"] and _main_thread(t["thread"])),
                           reverse=True)
            if mains:
                per_run.append((mains, r["wall_s"]))
        width = max((len(m) for m, _ in per_run), default=0)
        if width < 2:
            return None
        return " / ".join(f"{sum((m[i] if i < len(m) else 0.0) * w for m, w in per_run) / wall:.2f}"
                          for i in range(width))

    steps = eng(HIST["step"] + "_count")
    vllm_set = parse_cpulist(str(pin["vllm_cpus"])) if pin.get("mode") == "pinned" else None
    rest_set = parse_cpulist(str(pin["rest_cpus"])) if pin.get("mode") == "pinned" else None
    e2e = hist("e2e")
    return {
        "runs": len(runs), "ok": ok, "requests": sum(r["client"]["requests"] for r in runs),
        "client_tok_s": sum(r["client"]["n_out"] for r in runs) / span,
        "vllm_tok_s": eng(GEN) / span if eng(GEN) else None,
        **{f"client_{k}": client(k) for k in ("ttft", "tpot", "e2e")},
        "client_itl": client("itl", "n_out"),
        "gateway_queue": client("gateway_queue"), "gateway_ttft": client("gateway_ttft"),
        "worker_engine_ttft": client("worker_engine_ttft"), "gateway_relay": client("gateway_relay"),
        **{f"vllm_{k}": hist(k) for k in HIST if k != "step"},
        "vllm_batch": eng(GEN) / steps if steps else None,
        "vllm_tokens_per_step": hist("step"),
        "vllm_steps_s": steps / span if steps else None,
        "vllm_step_mix": step_mix(),
        "api_each": api_each(),
        "in_vllm": e2e * eng(HIST["e2e"] + "_count") / span if e2e is not None else None,
        "client_conc": (client("e2e") or 0.0) * ok / span,
        "cpu_api": role("vllm-api"), "cpu_api_max_thread": busiest("vllm-api"), "wait_api": role("vllm-api", "delay"),
        "cpu_engine": role("vllm-engine"), "cpu_engine_max_thread": busiest("vllm-engine"),
        "wait_engine": role("vllm-engine", "delay"),
        "cpu_gateways": role("gateway"), "wait_gateways": role("gateway", "delay"),
        # The engine's workers: vLLM's, or SGLang's once it stands in for vLLM (run.sh sglang-start).
        "cpu_workers": role("worker-vllm") or role("worker-sglang"),
        "wait_workers": role("worker-vllm", "delay") or role("worker-sglang", "delay"),
        "cpu_redis": role("redis"),
        # setup.sh's BAKE_EMBEDDED: `lockgate serve` processes, gateway and worker in one (no Redis between them).
        "cpu_embedded": role("embedded"), "wait_embedded": role("embedded", "delay"),
        # setup.sh's BAKE_COLOCATED: `lockgate serve` processes with Redis dispatch and dispatch.local.
        "cpu_local": role("local"), "wait_local": role("local", "delay"),
        "cpu_client": sum(r["client_cpu"] * r["wall_s"] for r in runs) / wall,
        # TCP connections the host opened per run (runs of engine.json files older than the count have none).
        "tcp_opens": (sum(r["tcp_opens"] for r in runs if "tcp_opens" in r) / n_tcp
                      if (n_tcp := sum("tcp_opens" in r for r in runs)) else None),
        "busy_all": cpus(None), "busy_vllm_set": cpus(vllm_set), "busy_rest_set": cpus(rest_set),
        "steal": cpus(None, "steal"),
        # Not a CSV column: each round's own tokens/s, to pair a target's rounds with the baseline's; keyed by
        # file too, as files pooled under one label each number their rounds from 0.
        "_round_tok_s": {(r.get("_src", ""), r["round"]): r["client"]["n_out"] / (r["client"]["span_s"] or 1e-9)
                         for r in runs},
        # and each round's vLLM ITL (the engine's step time as its requests saw it), paired the same way
        "_round_itl": {(r.get("_src", ""), r["round"]): v for r in runs if (v := round_itl(r)) is not None},
    }


def _main_thread(name: str) -> bool:
    """'VLLM::APIServer 889/889' (engine_probe's "comm pid/tid"): the process's own thread, not a helper."""
    pid, _, tid = name.rsplit(" ", 1)[-1].partition("/")
    return pid == tid


def round_itl(run: dict[str, Any]) -> float | None:
    n = run["engine"].get(HIST["itl"] + "_count")
    return run["engine"].get(HIST["itl"] + "_sum", 0.0) / n if n else None


def run_label(path: Path) -> str:
    """RUN/engine.json -> RUN; RUN-engine.json -> RUN."""
    return path.parent.name if path.name == "engine.json" else path.stem.removesuffix("-engine")


def groups(paths: list[Path], by_file: bool = False, by_dir: bool = False) -> list[dict[str, Any]]:
    """Runs grouped by (label, load, target); the label is the pin state, or with ``by_file`` the run, or with
    ``by_dir`` the file's folder (runs of one setup, kept in one folder, pooled)."""
    keyed: dict[tuple[str, float, str], tuple[list[dict[str, Any]], dict[str, Any]]] = {}
    for path in paths:
        doc = json.loads(path.read_text())
        label = path.parent.name if by_dir else run_label(path) if by_file else None
        for r in doc["runs"]:
            key = (label or r["condition"], r["x"], r["target"])
            keyed.setdefault(key, ([], doc.get("pin", {})))[0].append({**r, "_src": str(path)})
    out = []
    for (condition, x, target), (runs, pin) in keyed.items():
        out.append({"condition": condition, "x_name": runs[0]["x_name"], "x": x, "target": target,
                    **pooled(runs, pin)})
    return out


def f(v: float | None, scale: float = 1.0, fmt: str = ".1f") -> str:
    return "-" if v is None else format(v * scale, fmt)


def render(gs: list[dict[str, Any]], baseline: str | None) -> str:
    out = ["| condition | load | target | runs | ok | output tok/s client / vLLM | TTFT client / vLLM | "
           "TPOT client / vLLM | ITL client / vLLM | E2E client / vLLM | vLLM queue | batch | steps/s | "
           "in flight client / in vLLM | tokens per step per API server, % (<=8/16/32/128/more) |",
           "|---|---|---|---:|---:|---|---|---|---|---|---:|---:|---:|---|---|"]
    for g in gs:
        out.append(
            f"| {g['condition']} | {load(g)} | {g['target']} | {g['runs']} | {g['ok']} "
            f"| {f(g['client_tok_s'], 1, ',.0f')} / {f(g['vllm_tok_s'], 1, ',.0f')} "
            f"| {f(g['client_ttft'], 1e3)} / {f(g['vllm_ttft'], 1e3)} "
            f"| {f(g['client_tpot'], 1e3, '.2f')} / {f(g['vllm_tpot'], 1e3, '.2f')} "
            f"| {f(g['client_itl'], 1e3, '.2f')} / {f(g['vllm_itl'], 1e3, '.2f')} "
            f"| {f(g['client_e2e'], 1e3, '.0f')} / {f(g['vllm_e2e'], 1e3, '.0f')} | {f(g['vllm_queue'], 1e3)} "
            f"| {f(g['vllm_batch'])} | {f(g['vllm_steps_s'], 1, '.0f')} "
            f"| {f(g['client_conc'])} / {f(g['in_vllm'])} | {g['vllm_step_mix'] or '-'} |")
    out += ["", "| condition | load | target | vLLM API server: cores (busiest thread) / wait "
            "| API servers each (main thread) | engine core: cores "
            "(busiest thread) / wait | gateways: cores / wait | engine workers: cores / wait | Redis "
            "| embedded (gateway + worker): cores / wait | local start (gateway + worker): cores / wait | client "
            "| CPUs busy: all / vLLM's / rest | steal | TCP connections opened per run |",
            "|---|---|---|---|---|---|---|---|---:|---|---|---:|---|---:|---:|"]
    for g in gs:
        out.append(
            f"| {g['condition']} | {load(g)} | {g['target']} "
            f"| {f(g['cpu_api'], 1, '.2f')} ({f(g['cpu_api_max_thread'], 1, '.2f')}) / {f(g['wait_api'], 1, '.2f')} "
            f"| {g['api_each'] or '-'} "
            f"| {f(g['cpu_engine'], 1, '.2f')} ({f(g['cpu_engine_max_thread'], 1, '.2f')}) "
            f"/ {f(g['wait_engine'], 1, '.2f')} "
            f"| {f(g['cpu_gateways'], 1, '.2f')} / {f(g['wait_gateways'], 1, '.2f')} "
            f"| {f(g['cpu_workers'], 1, '.2f')} / {f(g['wait_workers'], 1, '.2f')} | {f(g['cpu_redis'], 1, '.2f')} "
            f"| {f(g['cpu_embedded'], 1, '.2f')} / {f(g['wait_embedded'], 1, '.2f')} "
            f"| {f(g['cpu_local'], 1, '.2f')} / {f(g['wait_local'], 1, '.2f')} | {f(g['cpu_client'], 1, '.2f')} "
            f"| {f(g['busy_all'], 100, '.0f')}% / {f(g['busy_vllm_set'], 100, '.0f')}% "
            f"/ {f(g['busy_rest_set'], 100, '.0f')}% | {f(g['steal'], 100, '.1f')}% "
            f"| {f(g['tcp_opens'], 1, '.0f')} |")
    split = [g for g in gs if g.get("worker_engine_ttft") is not None]
    if split:
        # Where lockgate's first token went, from its own headers (means, ms): client TTFT = (the client's and
        # the gateway's intake) + queue + worker -> engine -> worker + relay to the gateway.
        out += ["", "| condition | load | target | client TTFT | gateway TTFT | queue | engine as the worker saw it "
                "| vLLM TTFT | relay worker -> gateway |",
                "|---|---|---|---:|---:|---:|---:|---:|---:|"]
        for g in split:
            out.append(f"| {g['condition']} | {load(g)} | {g['target']} | {f(g['client_ttft'], 1e3)} "
                       f"| {f(g['gateway_ttft'], 1e3)} | {f(g['gateway_queue'], 1e3)} "
                       f"| {f(g['worker_engine_ttft'], 1e3)} | {f(g['vllm_ttft'], 1e3)} "
                       f"| {f(g['gateway_relay'], 1e3)} |")
    if baseline:
        base = {(g["condition"], g["x"]): g for g in gs if g["target"] == baseline}
        out += ["", f"| condition | load | target | output tok/s vs {baseline} (client, all requests) "
                "| per round | mean of rounds (95% CI) | baseline's rounds differ by "
                "| vLLM ITL vs baseline | its pairs: mean (95% CI) | vLLM TTFT added (ms, mean) "
                "| client TTFT added (ms, mean) |",
                "|---|---|---|---:|---|---:|---:|---:|---:|---:|---:|"]
        for g in gs:
            b = base.get((g["condition"], g["x"]))
            if g["target"] == baseline or b is None:
                continue

            def ratio(k: str, g: dict[str, Any] = g, b: dict[str, Any] = b) -> str:
                return f"{g[k] / b[k]:.1%}" if g[k] and b[k] else "-"

            def added(k: str, g: dict[str, Any] = g, b: dict[str, Any] = b) -> str:
                return f"{(g[k] - b[k]) * 1e3:+.1f}" if g[k] is not None and b[k] is not None else "-"

            out.append(f"| {g['condition']} | {load(g)} | {g['target']} | {ratio('client_tok_s')} "
                       f"| {', '.join(f'{v:.1%}' for v in round_ratios(g, b)) or '-'} "
                       f"| {mean_ci(round_ratios(g, b))} | {spread(b)} "
                       f"| {ratio('vllm_itl')} | {mean_ci(round_ratios(g, b, '_round_itl'))} "
                       f"| {added('vllm_ttft')} | {added('client_ttft')} |")
    return "\n".join(out) + "\n"


def round_ratios(g: dict[str, Any], b: dict[str, Any], key: str = "_round_tok_s") -> list[float]:
    """Each round's kept ratio against the baseline's run of the same round (the A B / B A pairs): how far
    one pair strays from the pooled figure is the run's own noise. ``key="_round_itl"``: vLLM's ITL instead."""
    mine, base = g[key], b[key]
    return [mine[k] / base[k] for k in sorted(mine) if base.get(k)]


# Two-sided 95% quantiles of Student's t for 1..30 degrees of freedom (beyond: the normal's 1.96).
T95 = (12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228, 2.201, 2.179, 2.160, 2.145, 2.131,
       2.120, 2.110, 2.101, 2.093, 2.086, 2.080, 2.074, 2.069, 2.064, 2.060, 2.056, 2.052, 2.048, 2.045, 2.042)


def mean_ci(values: list[float]) -> str:
    """Mean of the paired rounds' ratios and its 95% confidence interval: each pair shares the machine's state
    of its moment, so the pairs, not the pooled totals, say how sure a kept ratio is."""
    n = len(values)
    if n < 2:
        return "-"
    mean = sum(values) / n
    sd = (sum((v - mean) ** 2 for v in values) / (n - 1)) ** 0.5
    half = (T95[n - 2] if n - 1 <= len(T95) else 1.96) * sd / n ** 0.5
    return f"{mean:.1%} ({mean - half:.1%} to {mean + half:.1%})"


def spread(b: dict[str, Any]) -> str:
    vals = [v for v in b["_round_tok_s"].values() if v]
    return f"{max(vals) / min(vals) - 1:.1%}" if len(vals) > 1 else "-"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("engine_json", nargs="+", type=Path)
    parser.add_argument("--baseline")
    parser.add_argument("--csv", type=Path)
    parser.add_argument("--by-file", action="store_true",
                        help="label rows by run (RUN/engine.json or RUN-engine.json), not by pin state")
    parser.add_argument("--by-dir", action="store_true",
                        help="label rows by each file's folder, pooling the runs (and rounds) of one folder")
    args = parser.parse_args()
    gs = groups(args.engine_json, args.by_file, args.by_dir)
    print(render(gs, args.baseline))
    if args.csv:
        with args.csv.open("w", newline="") as fh:
            writer = csv.DictWriter(fh, fieldnames=[k for k in gs[0] if not k.startswith("_")], extrasaction="ignore")
            writer.writeheader()
            for g in gs:
                writer.writerow({k: (f"{v:.6g}" if isinstance(v, float) else v) for k, v in g.items()})
    return 0


if __name__ == "__main__":
    sys.exit(main())
