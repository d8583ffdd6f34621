"""The Lua scripts against a real Redis (``env`` in conftest.py: ``LOCKGATE_TEST_REDIS_URL``, default DB 9; a key
prefix of their own)."""

from __future__ import annotations

import asyncio
import os
import time

import pytest
from redis.asyncio import Redis

from dispatch.redis.keys import GROUP, Keys
from dispatch.redis.scripts import Scripts, take_when_rung

URL = os.environ.get("LOCKGATE_TEST_REDIS_URL", "redis://127.0.0.1:6379/9")


async def submit(scripts: Scripts, keys: Keys, band: int, payload: bytes, depth: int = 3,
                 tenant: str = "t") -> list[object]:
    streams = keys.job_streams("b")
    result: list[object] = await scripts.submit(
        keys=keys.queue_keys("b"),
        args=[streams.index(keys.jobs("b", band)) + 1, depth, payload, 60, GROUP, payload.decode(), tenant])
    return result


async def take(scripts: Scripts, keys: Keys, consumer: str, count: int) -> list[list[object]]:
    rows: list[list[object]] = await scripts.take(keys=keys.queue_keys("b"), args=[GROUP, consumer, count, 60])
    return rows


@pytest.mark.anyio
async def test_submit_refuses_at_depth_counting_only_undelivered_jobs(env: tuple[Redis, Scripts, Keys]) -> None:
    redis, scripts, keys = env
    for i in range(3):
        assert (await submit(scripts, keys, i % 2, b"j%d" % i))[0] == 1
    assert await submit(scripts, keys, 0, b"over") == [0, 3]
    # One taken by a worker (pending, not waiting): room for one more.
    await take(scripts, keys, "w1", 1)
    assert (await submit(scripts, keys, 0, b"fits"))[0] == 1
    # (the streams' TTLs come from the workers' group creation, which this fixture stands in for)
    assert all([await redis.ttl(k) > 0 for k in keys.queue_keys("b")[4:] if await redis.exists(k)])


@pytest.mark.anyio
async def test_take_serves_the_higher_band_first(env: tuple[Redis, Scripts, Keys]) -> None:
    _, scripts, keys = env
    await submit(scripts, keys, 0, b"low")
    await submit(scripts, keys, 1, b"high")
    rows = await take(scripts, keys, "w1", 1)
    assert [r[2][1] for r in rows] == [b"high"]
    rows = await take(scripts, keys, "w1", 5)
    assert [r[2][1] for r in rows] == [b"low"]


@pytest.mark.anyio
async def test_take_gives_each_tenant_a_turn_whatever_another_queued(env: tuple[Redis, Scripts, Keys]) -> None:
    redis, scripts, keys = env
    for i in range(6):
        await submit(scripts, keys, 0, b"flood%d" % i, depth=100, tenant="flood")
    assert [r[2][1] for r in await take(scripts, keys, "w1", 2)] == [b"flood0", b"flood1"]
    await submit(scripts, keys, 0, b"trickle0", depth=100, tenant="trickle")
    await submit(scripts, keys, 0, b"trickle1", depth=100, tenant="trickle")
    order = [r[2][1] for r in await take(scripts, keys, "w1", 10)]
    # The trickle's jobs interleave with the flood's instead of waiting behind its four remaining ones.
    assert order.index(b"trickle0") <= 1, order
    assert order.index(b"trickle1") <= 3, order
    assert sorted(order) == sorted([b"flood2", b"flood3", b"flood4", b"flood5", b"trickle0", b"trickle1"])
    # Everything taken is in the pending list (at-least-once), nothing is left waiting, the bell is gone.
    assert len(await redis.xpending_range(keys.jobs("b", 0), GROUP, "-", "+", 20)) == 8
    assert await redis.zcard(keys.fair("b", 0)) == 0
    assert await redis.hlen(keys.payloads("b")) == 0
    assert not await redis.exists(keys.bell("b"))


@pytest.mark.anyio
async def test_submit_rings_the_bell_an_idle_worker_waits_on(env: tuple[Redis, Scripts, Keys]) -> None:
    redis, scripts, keys = env
    await submit(scripts, keys, 1, b"j")
    assert await redis.blpop([keys.bell("b")], timeout=0.1) is not None
    assert 0 < await redis.ttl(keys.bell("b")) <= 60 or not await redis.exists(keys.bell("b"))


@pytest.mark.anyio
async def test_heartbeat_reports_jobs_claimed_elsewhere_and_skips_acked(env: tuple[Redis, Scripts, Keys]) -> None:
    redis, scripts, keys = env
    stream = keys.jobs("b", 0)
    for payload in (b"a", b"b", b"c"):
        await submit(scripts, keys, 0, payload)
    rows = await take(scripts, keys, "w1", 3)
    ids = [r[1] for r in rows]
    await redis.xclaim(stream, GROUP, "w2", 0, [ids[1]])  # stolen
    await redis.xack(stream, GROUP, ids[2])  # finished
    lost = await scripts.heartbeat(keys=[stream], args=[GROUP, "w1", *ids])
    assert lost == [ids[1]]


@pytest.mark.anyio
async def test_reclaim_takes_idle_jobs_with_their_delivery_count(env: tuple[Redis, Scripts, Keys]) -> None:
    redis, scripts, keys = env
    stream = keys.jobs("b", 0)
    await submit(scripts, keys, 0, b"a")
    await take(scripts, keys, "dead-worker", 1)
    assert await scripts.reclaim(keys=[stream], args=[GROUP, "w2", 60_000, 10]) == []  # not idle long enough
    rows = await scripts.reclaim(keys=[stream], args=[GROUP, "w2", 0, 10])
    assert [(r[2], r[1][1]) for r in rows] == [(2, b"a")]
    pending = await redis.xpending_range(stream, GROUP, "-", "+", 10)
    assert pending[0]["consumer"] == b"w2"


async def rung_take(redis: Redis, scripts: Scripts, keys: Keys, timeout_s: float) -> list[object]:
    return await take_when_rung(redis, scripts, keys.queue_keys("b"), keys.bell("b"), timeout_s, [GROUP, "w", 4, 60])


@pytest.mark.anyio
async def test_an_idle_worker_gets_the_job_in_the_bells_reply(env: tuple[Redis, Scripts, Keys]) -> None:
    redis, scripts, keys = env
    waiting = asyncio.create_task(rung_take(redis.client(), scripts, keys, 10.0))
    await asyncio.sleep(0.2)
    assert not waiting.done()
    t0 = time.monotonic()
    await submit(scripts, keys, 0, b"job-a")
    rows = await asyncio.wait_for(waiting, 5)
    assert time.monotonic() - t0 < 2  # woken by the submit, not by the 10 s timeout
    assert [(r[2]) for r in rows] == [[b"job", b"job-a"]]  # type: ignore[index]
    # Taken as this consumer: the job is pending in the group, no longer waiting.
    pending = await redis.xpending(keys.jobs("b", 0), GROUP)
    assert pending["pending"] == 1
    assert await redis.zcard(keys.fair_queues("b")[0]) == 0


@pytest.mark.anyio
async def test_a_wait_that_times_out_takes_nothing(env: tuple[Redis, Scripts, Keys]) -> None:
    redis, scripts, keys = env
    t0 = time.monotonic()
    assert await rung_take(redis, scripts, keys, 0.3) == []
    assert 0.25 < time.monotonic() - t0 < 3


@pytest.mark.anyio
async def test_a_flushed_script_cache_falls_back_to_loading_take(env: tuple[Redis, Scripts, Keys]) -> None:
    redis, scripts, keys = env
    await submit(scripts, keys, 1, b"job-b")
    await redis.script_flush()  # what a Redis restart or a failover to a fresh replica does
    rows = await rung_take(redis, scripts, keys, 5.0)
    assert [(r[2]) for r in rows] == [[b"job", b"job-b"]]  # type: ignore[index]
