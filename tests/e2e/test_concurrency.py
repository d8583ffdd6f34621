"""Many concurrent streams complete; a client that leaves frees its worker slot."""

from __future__ import annotations

import asyncio
import json
import time

import httpx
import pytest

from backends.sim.engine import SimBackend
from tests.support.configs import sim_config
from tests.support.live import LiveServer

CHAT = "/v1/chat/completions"


def body(content: str, max_tokens: int, stream: bool = True) -> dict[str, object]:
    return {"model": "sim-small", "messages": [{"role": "user", "content": content}], "max_tokens": max_tokens,
            "stream": stream, "ignore_eos": True}


@pytest.mark.anyio
async def test_64_concurrent_streams_complete() -> None:
    config = sim_config(backends={"sim": {"ttft_ms": 20, "tpot_ms": 5, "batch_capacity": 64}},
                        limits={"max_queue_depth": 64})
    with LiveServer(config) as server:
        limits = httpx.Limits(max_connections=100)
        async with httpx.AsyncClient(base_url=server.url, limits=limits, timeout=30) as client:

            async def one(i: int) -> tuple[int, str]:
                text = ""
                async with client.stream("POST", CHAT, json=body(f"stream {i}", 32)) as resp:
                    assert resp.status_code == 200
                    lines = [line async for line in resp.aiter_lines() if line.startswith("data: ")]
                assert lines[-1] == "data: [DONE]"
                for line in lines[:-1]:
                    chunk = json.loads(line[6:])
                    assert "error" not in chunk
                    text += chunk["choices"][0]["delta"].get("content") or ""
                return i, text

            results = await asyncio.gather(*(one(i) for i in range(64)))
        assert len(results) == 64
        assert all(len(text.split()) == 32 for _, text in results)
        # Different prompts give different texts: nothing was crossed between streams.
        assert len({text for _, text in results}) == 64
        sim = server.runtime.backends["sim"]
        assert isinstance(sim, SimBackend)
        assert sim.completed_requests == 64


@pytest.mark.anyio
async def test_disconnect_mid_stream_frees_the_worker_slot() -> None:
    # One worker slot: a long stream occupies it; when its client leaves, the next request must run.
    config = sim_config(backends={"sim": {"ttft_ms": 5, "tpot_ms": 20, "batch_capacity": 1}})
    with LiveServer(config) as server:
        sim = server.runtime.backends["sim"]
        assert isinstance(sim, SimBackend)
        async with httpx.AsyncClient(base_url=server.url, timeout=30) as client:
            async with client.stream("POST", CHAT, json=body("long", 500)) as resp:
                assert resp.status_code == 200
                seen = 0
                async for line in resp.aiter_lines():
                    if '"content"' in line:
                        seen += 1
                    if seen == 3:
                        break
            # Leaving the block closed the connection mid-stream.
            t0 = time.monotonic()
            assert server.wait_for(lambda: server.runtime.dispatcher.running("sim") == 0, timeout=2)
            assert time.monotonic() - t0 < 1.0
            assert sim.cancelled_requests == 1
            # The slot is free: a new request completes quickly (the long one would take 10 s).
            done = await client.post(CHAT, json=body("next", 3, stream=False))
            assert done.status_code == 200
            assert done.json()["usage"]["completion_tokens"] == 3
        assert sim.completed_requests == 1


@pytest.mark.anyio
async def test_disconnect_while_waiting_non_streamed_cancels_the_job() -> None:
    config = sim_config(backends={"sim": {"ttft_ms": 5, "tpot_ms": 20, "batch_capacity": 1}})
    with LiveServer(config) as server:
        sim = server.runtime.backends["sim"]
        assert isinstance(sim, SimBackend)
        async with httpx.AsyncClient(base_url=server.url, timeout=0.5) as client:
            with pytest.raises(httpx.ReadTimeout):
                await client.post(CHAT, json=body("long", 500, stream=False))
        assert sim.started_requests == 1
        assert server.wait_for(lambda: server.runtime.dispatcher.running("sim") == 0, timeout=2)
        assert sim.cancelled_requests == 1


@pytest.mark.anyio
async def test_disconnect_during_a_burst_cancels_the_job_promptly() -> None:
    # The engine runs far ahead of the client (zero per-token time), so events are always buffered and the
    # stream never waits for one: the disconnect must still be noticed while the burst is being written.
    config = sim_config(backends={"sim": {"ttft_ms": 1, "tpot_ms": 0, "max_model_len": 100_000}},
                        server={"max_buffered_events": 256}, max_output_tokens=50_000, max_context=100_000)
    with LiveServer(config) as server:
        sim = server.runtime.backends["sim"]
        assert isinstance(sim, SimBackend)
        async with httpx.AsyncClient(base_url=server.url, timeout=30) as client, \
                client.stream("POST", CHAT, json=body("burst", 50_000)) as resp:
            assert resp.status_code == 200
            async for _ in resp.aiter_lines():
                break
        assert server.wait_for(lambda: sim.cancelled_requests == 1, timeout=10)
        assert sim.completed_requests == 0
