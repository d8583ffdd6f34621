"""Time to the first token of one engine call at c=1, by client: what a worker's engine leg costs over the engine.

A vLLM protocol replica runs in its own process (`lockgate sim-server`, a fixed TTFT), and this process sends one
streamed completion at a time, alternating between:

- adapter: `VllmBackend.generate()` (how a worker calls the engine, its lean client: backends/http/lean.py), up to
  its first token-carrying `Delta`;
- adapter-httpx: the same adapter with `client = "httpx"` (httpx's transport, the default until 2026-12-01);
- httpx: `httpx.AsyncClient.stream` on the adapter's transport, up to the first `data: {` line;
- lean: lockgate bench's own HTTP/1.1 client (`loadtest.transport.H1Transport`), the direct target's client on
  the GPU bake-off, up to the first `data: {` bytes.

All keep their connection, so none pays a TCP handshake after the warm-up. The replica's TTFT is in every
figure alike; the differences are the clients' fixed costs (docs/performance.md, *An engine call's fixed cost*).
Run: .venv/bin/python bench/engine_first_token.py [--requests 200] [--ttft-ms 10]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import httpx
import msgspec
import uvloop

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from backends.events import Delta, Failed
from backends.http.client import engine_transport
from backends.request import GenerationRequest
from backends.vllm import VllmBackend, VllmOptions
from bench.dispatch import vllm_replica
from loadtest.transport import H1Transport

TOKENS = 16


async def measure(url: str, requests: int) -> dict[str, list[float]]:
    body = msgspec.json.encode({"model": "m", "prompt": "bench prompt", "max_tokens": TOKENS, "stream": True,
                                "ignore_eos": True})
    headers = {"content-type": "application/json", "accept": "text/event-stream"}
    backend = VllmBackend("v", VllmOptions(url=url, model="m"))
    httpx_backend = VllmBackend("v", VllmOptions(url=url, model="m", client="httpx"))
    client = httpx.AsyncClient(base_url=url, timeout=None, transport=engine_transport(httpx.Limits()))
    lean = H1Transport()

    async def through(adapter: VllmBackend, i: int) -> float:
        t0 = time.perf_counter()
        first = 0.0
        async for event in adapter.generate(GenerationRequest(
                request_id=f"r{i}", model="m", operation="text_completion", prompt="bench prompt", max_tokens=TOKENS,
                extra={"ignore_eos": True})):
            if isinstance(event, Failed):
                raise RuntimeError(f"request {i} failed: {event}")
            if not first and isinstance(event, Delta) and event.tokens > 0:
                first = time.perf_counter() - t0
        return first

    async def adapter(i: int) -> float:
        return await through(backend, i)

    async def adapter_httpx(i: int) -> float:
        return await through(httpx_backend, i)

    async def via_httpx(i: int) -> float:
        t0 = time.perf_counter()
        first = 0.0
        async with client.stream("POST", "/v1/completions", content=body, headers=headers) as resp:
            async for line in resp.aiter_lines():
                if not first and line.startswith("data: {"):
                    first = time.perf_counter() - t0
        return first

    async def via_lean(i: int) -> float:
        t0 = time.perf_counter()
        first = 0.0
        async with lean.stream(f"{url}/v1/completions", headers, body) as resp:
            async for data in resp.aiter_raw():
                if not first and b"data: {" in data:
                    first = time.perf_counter() - t0
        return first

    clients: dict[str, Callable[[int], Awaitable[float]]] = {"adapter": adapter, "adapter-httpx": adapter_httpx,
                                                             "httpx": via_httpx, "lean": via_lean}
    results: dict[str, list[float]] = {name: [] for name in clients}
    try:
        for call in clients.values():  # warm: connections open, code paths hot
            for _ in range(5):
                await call(-1)
        order = list(clients)
        for i in range(requests):
            for name in order if i % 2 == 0 else order[::-1]:
                results[name].append(await clients[name](i))
    finally:
        await backend.close()
        await httpx_backend.close()
        await client.aclose()
        await lean.aclose()
    return results


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--requests", type=int, default=200, help="per client")
    ap.add_argument("--ttft-ms", type=float, default=10.0, help="the replica's time to first token")
    args = ap.parse_args()
    with vllm_replica(ttft_ms=args.ttft_ms, tpot_ms=2) as url:
        results = uvloop.run(measure(url, args.requests))
    lean = statistics.median(results["lean"])
    print(f"{'client':12s} {'p50 ms':>8s} {'mean ms':>8s} {'p90 ms':>8s} {'p50 over lean':>14s}")
    for name, values in results.items():
        values.sort()
        p50 = statistics.median(values)
        print(f"{name:12s} {p50 * 1e3:8.2f} {statistics.mean(values) * 1e3:8.2f} "
              f"{values[int(len(values) * 0.9)] * 1e3:8.2f} {(p50 - lean) * 1e3:+14.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
