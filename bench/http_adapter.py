"""What the HTTP adapter layer costs per chunk, and what it adds to TTFT.

1. CPU per engine chunk: SSE decoding + JSON + translation to Deltas, on a recorded vLLM-style stream
   (continuous usage on every chunk), fed in 1 KiB network reads.
2. TTFT and per-token time through a vllm adapter vs. straight from the engine: the vLLM protocol replica
   (simulator: ttft 20 ms, 2 ms/token) served by uvicorn, read directly with httpx and through the adapter.
Run: .venv/bin/python bench/http_adapter.py [--chunks 20000] [--requests 50]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import msgspec

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from backends.events import Delta
from backends.http.openai import OpenAIChunks
from backends.http.sse import SSEDecoder
from backends.replicas.server import replica_app
from backends.request import ChatMessage, GenerationRequest
from backends.vllm import VllmBackend, VllmOptions
from tests.support.servers import ServerThread


def request(max_tokens: int) -> GenerationRequest:
    return GenerationRequest(request_id="b", model="m", operation="chat", max_tokens=max_tokens,
                             messages=(ChatMessage("user", "bench"),), extra={"ignore_eos": True})


def cpu_per_chunk(n: int) -> float:
    chunks = []
    for i in range(n):
        obj = {"id": "chatcmpl-1", "object": "chat.completion.chunk", "created": 1, "model": "m",
               "choices": [{"index": 0, "delta": {"content": " word"}, "logprobs": None, "finish_reason": None}],
               "usage": {"prompt_tokens": 10, "completion_tokens": i + 1, "total_tokens": i + 11}}
        chunks.append(b"data: " + msgspec.json.encode(obj) + b"\n\n")
    stream = b"".join(chunks)
    reads = [stream[i:i + 1024] for i in range(0, len(stream), 1024)]
    t0 = time.perf_counter()
    decoder = SSEDecoder()
    translator = OpenAIChunks(request(n))
    deltas = 0
    for read in reads:
        for event in decoder.feed(read, 0):
            deltas += sum(isinstance(e, Delta) for e in translator.feed(msgspec.json.decode(event.data), 0))
    elapsed = time.perf_counter() - t0
    assert deltas == n
    return elapsed / n


async def ttft_direct(url: str, tokens: int) -> tuple[float, float]:
    body = {"model": "m", "messages": [{"role": "user", "content": "bench"}], "max_tokens": tokens,
            "stream": True, "ignore_eos": True}
    async with httpx.AsyncClient() as client:
        t0 = time.perf_counter()
        first = None
        async with client.stream("POST", f"{url}/v1/chat/completions", json=body) as resp:
            async for line in resp.aiter_lines():
                if first is None and '"content":"' in line and '"content":""' not in line:
                    first = time.perf_counter()
        assert first is not None
        return first - t0, time.perf_counter() - t0


async def ttft_adapter(backend: VllmBackend, tokens: int) -> tuple[float, float]:
    t0 = time.perf_counter()
    first = None
    async for event in backend.generate(request(tokens)):
        if first is None and isinstance(event, Delta):
            first = time.perf_counter()
    assert first is not None
    return first - t0, time.perf_counter() - t0


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--chunks", type=int, default=20000)
    parser.add_argument("--requests", type=int, default=50)
    parser.add_argument("--tokens", type=int, default=64)
    args = parser.parse_args()
    print(f"CPU per chunk (SSE + JSON + translate): {cpu_per_chunk(args.chunks) * 1e6:.1f} us")
    server = ServerThread(replica_app("vllm", "m", {"ttft_ms": 20, "tpot_ms": 2})).start()

    async def run() -> dict[str, list[tuple[float, float]]]:
        backend = VllmBackend("v", VllmOptions(url=server.url, model="m"))
        out: dict[str, list[tuple[float, float]]] = {"direct": [], "adapter": []}
        for _ in range(args.requests):
            out["direct"].append(await ttft_direct(server.url, args.tokens))
            out["adapter"].append(await ttft_adapter(backend, args.tokens))
        await backend.close()
        return out

    results: Any = asyncio.run(run())
    server.stop()
    for name, rows in results.items():
        ttft = statistics.median(r[0] for r in rows) * 1e3
        total = statistics.median(r[1] for r in rows) * 1e3
        print(f"{name:8s} median TTFT {ttft:6.2f} ms, median total ({args.tokens} tokens) {total:7.2f} ms")


if __name__ == "__main__":
    main()
