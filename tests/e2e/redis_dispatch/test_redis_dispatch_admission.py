"""Queue over its limit: 429 with Retry-After at once; every accepted job still completes."""

from __future__ import annotations

import time

import anyio
import httpx
import pytest

from .harness import Deployment, body, wait_until


@pytest.mark.anyio
async def test_queue_over_limit_gets_429_with_retry_after_and_accepted_jobs_complete(
        deployment: Deployment) -> None:
    cfg = deployment.config(sim={"ttft_ms": 300, "tpot_ms": 1}, concurrency=1,
                            limits={"max_queue_depth": 3, "retry_after_s": 2})
    deployment.worker(cfg)
    gw = deployment.gateway(cfg)
    statuses: list[int] = []

    async with httpx.AsyncClient(base_url=gw.url, timeout=30) as client:
        async def accepted(i: int) -> None:
            r = await client.post("/v1/chat/completions", json=body(f"queued {i}", max_tokens=2, stream=False))
            statuses.append(r.status_code)

        async with anyio.create_task_group() as tg:
            for i in range(4):  # one runs (concurrency 1), three wait: the queue is full
                tg.start_soon(accepted, i)

            def waiting() -> bool:
                return deployment.waiting() == 3

            await anyio.to_thread.run_sync(lambda: wait_until(waiting, 10, "three waiting jobs"))
            t0 = time.perf_counter()
            refused = await client.post("/v1/chat/completions", json=body("one too many", stream=False))
            elapsed = time.perf_counter() - t0
    assert refused.status_code == 429
    assert refused.headers["retry-after"] == "2"
    assert refused.json()["error"]["code"] == "rate_limit_exceeded"
    assert elapsed < 0.5
    assert statuses == [200, 200, 200, 200]  # nothing accepted was trimmed away
    assert deployment.r.xlen(deployment.jobs_key()) == 0
