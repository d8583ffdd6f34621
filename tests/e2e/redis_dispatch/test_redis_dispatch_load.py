"""2 gateways, 3 workers, 500 streamed requests: all complete; no token lost or duplicated."""

from __future__ import annotations

import asyncio
import random

import anyio
import httpx
import pytest

from backends.request import ChatMessage, GenerationRequest
from backends.sim.engine import SimBackend
from backends.sim.options import SimOptions

from .harness import Deployment, body, content_of, sse_events

SIM = {"ttft_ms": 5, "tpot_ms": 2}


async def expected_text(prompt: str, max_tokens: int) -> str:
    """What the simulator produces for this prompt, computed here in-process."""
    sim = SimBackend("sim", SimOptions(ttft_ms=0, tpot_ms=0))
    await sim.start()
    request = GenerationRequest(request_id="x", model="m", operation="chat", max_tokens=max_tokens, seed=7,
                                messages=(ChatMessage(role="user", content=prompt),), extra={"ignore_eos": True})
    return "".join(getattr(e, "text", "") for e in [e async for e in sim.generate(request)])


@pytest.mark.anyio
async def test_two_gateways_three_workers_500_streams_exact_text(deployment: Deployment) -> None:
    # A visibility timeout far above any event-loop stall a loaded 2-core machine produces: this test is about
    # throughput and exactness; reclaims have their own tests.
    cfg = deployment.config(sim=SIM, dispatch={"visibility_timeout_s": 15.0, "heartbeat_interval_s": 1.0})
    for _ in range(3):
        deployment.worker(cfg)
    gateways = [deployment.gateway(cfg), deployment.gateway(cfg)]
    rng = random.Random(3)
    prompts = [(f"request {i} {rng.random():.6f}", rng.randint(4, 24)) for i in range(500)]
    results: dict[int, tuple[str, int, bool]] = {}
    limit = anyio.Semaphore(48)

    async def one(client: httpx.AsyncClient, i: int, prompt: str, max_tokens: int) -> None:
        async with limit, client.stream("POST", "/v1/chat/completions", json=body(prompt, max_tokens)) as resp:
            assert resp.status_code == 200, await resp.aread()
            text, usage, done = "", 0, False
            async for line in resp.aiter_lines():
                for event in sse_events(iter([line])):
                    if event == "[DONE]":
                        done = True
                    elif isinstance(event, dict):
                        assert "error" not in event, event
                        text += content_of(event) or ""
                        if event.get("usage"):
                            usage = event["usage"]["completion_tokens"]
            results[i] = (text, usage, done)

    clients = [httpx.AsyncClient(base_url=gw.url, timeout=60,
                                 limits=httpx.Limits(max_connections=64)) for gw in gateways]
    try:
        async with anyio.create_task_group() as tg:
            for i, (prompt, n) in enumerate(prompts):
                tg.start_soon(one, clients[i % 2], i, prompt, n)
    finally:
        await asyncio.gather(*(c.aclose() for c in clients))
    assert len(results) == 500
    for i, (prompt, n) in enumerate(prompts):
        text, usage, done = results[i]
        assert done, i
        assert usage == n, (i, usage, n)
        assert text == await expected_text(prompt, n), i
