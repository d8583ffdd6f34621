"""CPU per token of the `vllm` adapter reading real engine streams, by client and network (the worker's hot path).

A vLLM protocol replica runs in its own process (`lockgate sim-server`), so only the adapter's side is counted:
this process runs C concurrent `VllmBackend.generate()` streams of T tokens each until R requests are done, on
uvloop as `lockgate worker` does, and reads its own CPU time (user + system) before and after. Networks:

- lean: the adapter's default client (backends/http/lean.py: lockgate's own HTTP/1.1 client on the asyncio
  network's protocol, no httpx in the path);
- asyncio: `client = "httpx"`, on backends/http/network.py (a protocol buffer and one future per wait);
- anyio: httpx's default transport (anyio's socket stream: a cancel scope per read, reading paused and resumed
  around each wait).

Rounds alternate the order (a b, b a, ...) so a drift in the machine's speed hits both alike.
Run: .venv/bin/python bench/engine_stream_cpu.py [--requests 400] [--concurrency 32] [--tokens 128] [--rounds 2]
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from pathlib import Path

import httpx
import uvloop

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from backends.events import Delta, Failed
from backends.request import GenerationRequest
from backends.vllm import VllmBackend, VllmOptions
from bench.dispatch import vllm_replica

NETWORKS = ("lean", "asyncio", "anyio")


def request(i: int, tokens: int) -> GenerationRequest:
    return GenerationRequest(request_id=f"r{i}", model="m", operation="text_completion", prompt="bench prompt",
                             max_tokens=tokens, extra={"ignore_eos": True})


async def run(url: str, network: str, n: int, concurrency: int, tokens: int) -> tuple[float, int]:
    options = VllmOptions(url=url, model="m", max_connections=concurrency,
                          max_keepalive_connections=concurrency, client="lean" if network == "lean" else "httpx")
    transport = None
    if network == "anyio":
        transport = httpx.AsyncHTTPTransport(limits=httpx.Limits(max_connections=concurrency,
                                                                 max_keepalive_connections=concurrency))
    backend = VllmBackend("v", options, transport=transport)
    queue = list(range(n))
    got = 0

    async def one(i: int) -> None:
        nonlocal got
        async for event in backend.generate(request(i, tokens)):
            if isinstance(event, Delta):
                got += event.tokens
            elif isinstance(event, Failed):
                raise RuntimeError(f"request {i} failed: {event}")

    async def lane() -> None:
        while queue:
            await one(queue.pop())

    await asyncio.gather(*(one(-1 - k) for k in range(concurrency)))  # warm: connections open, code paths hot
    got = 0
    t0 = time.process_time()
    await asyncio.gather(*(lane() for _ in range(concurrency)))
    cpu = time.process_time() - t0
    await backend.close()
    return cpu, got


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--requests", type=int, default=400)
    ap.add_argument("--concurrency", type=int, default=32)
    ap.add_argument("--tokens", type=int, default=128)
    ap.add_argument("--tpot-ms", type=float, default=3.0, help="the replica's time per token")
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--networks", default=",".join(NETWORKS))
    args = ap.parse_args()
    networks = args.networks.split(",")
    results: dict[str, list[float]] = {n: [] for n in networks}
    with vllm_replica(ttft_ms=5, tpot_ms=args.tpot_ms) as url:
        for r in range(args.rounds):
            for network in networks if r % 2 == 0 else networks[::-1]:
                cpu, tokens = uvloop.run(run(url, network, args.requests, args.concurrency, args.tokens))
                assert tokens == args.requests * args.tokens, (tokens, args.requests * args.tokens)
                results[network].append(cpu / tokens * 1e6)
                print(f"round {r + 1} {network:8s} {cpu / tokens * 1e6:6.1f} us CPU per token "
                      f"({tokens} tokens, {cpu:.2f} s)", flush=True)
    for network, values in results.items():
        print(f"{network:8s} us per token: {', '.join(f'{v:.1f}' for v in values)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
