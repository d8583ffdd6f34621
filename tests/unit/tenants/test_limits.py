"""Per-key limits: the in-process limiter and the Redis one (real Redis, ``LOCKGATE_TEST_REDIS_URL``) give the
same decisions; the Redis one holds under concurrent admissions and frees the slots of a crashed gateway."""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import AsyncIterator

import pytest
from redis.asyncio import Redis

from gateway.tenants.limits import RateLimiter, Snapshot, Verdict, go_duration, rate_headers
from gateway.tenants.memory import MemoryLimiter
from gateway.tenants.records import KeyRecord
from gateway.tenants.redis_limits import RedisLimiter

URL = os.environ.get("LOCKGATE_TEST_REDIS_URL", "redis://127.0.0.1:6379/9")


def key(**limits: int) -> KeyRecord:
    return KeyRecord(id=f"k{uuid.uuid4().hex[:8]}", name="t", sha256="0" * 64, **limits)


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
async def redis() -> AsyncIterator[tuple[Redis, str]]:
    client = Redis.from_url(URL)
    prefix = f"lgt{uuid.uuid4().hex[:8]}"
    yield client, prefix
    found = [k async for k in client.scan_iter(match=f"{prefix}:*")]
    if found:
        await client.delete(*found)
    await client.aclose()


@pytest.fixture(params=["memory", "redis"])
async def limiter(request: pytest.FixtureRequest, redis: tuple[Redis, str]) -> AsyncIterator[RateLimiter]:
    lim: RateLimiter = MemoryLimiter() if request.param == "memory" else RedisLimiter(redis[0], redis[1], 30)
    await lim.start()
    yield lim
    await lim.close()


def test_reset_durations_are_written_as_openai_writes_them() -> None:
    assert [go_duration(s) for s in (0, 0.02, 1, 1.5, 360, 3723, 59.5)] == [
        "0s", "20ms", "1s", "1.5s", "6m0s", "1h2m3s", "59.5s"]


def test_headers_only_for_the_limits_a_key_has() -> None:
    headers = rate_headers(key(rpm=60), Snapshot(requests_left=30.4, tokens_left=0))
    assert headers == {"x-ratelimit-limit-requests": "60", "x-ratelimit-remaining-requests": "30",
                       "x-ratelimit-reset-requests": "29.6s"}


@pytest.mark.anyio
async def test_requests_per_minute(limiter: RateLimiter) -> None:
    k = key(rpm=3)
    verdicts = [(await limiter.admit(k, f"s{i}", 1, 0)).verdict for i in range(4)]
    assert verdicts == [Verdict.OK, Verdict.OK, Verdict.OK, Verdict.REQUESTS]
    refused = await limiter.admit(k, "s9", 1, 0)
    # One request refills in 20 s at 3 a minute.
    assert 19 < refused.wait_s <= 20


@pytest.mark.anyio
async def test_tokens_per_minute_prompt_at_admission_lease_and_settle(limiter: RateLimiter) -> None:
    k = key(tpm=100)
    first = await limiter.admit(k, "a", 30, 50)
    assert (first.verdict, first.lease) == (Verdict.OK, 50)
    assert first.snapshot.tokens_left == pytest.approx(20, abs=0.5)
    assert (await limiter.admit(k, "b", 30, 50)).verdict is Verdict.TOKENS
    # The first used 10 of its 50: 40 come back, and the next one fits.
    await limiter.settle(k, "a", 40)
    second = await limiter.admit(k, "b", 30, 50)
    assert second.verdict is Verdict.OK
    assert second.lease == pytest.approx(30, abs=1)
    assert (await limiter.admit(k, "c", 100, 0)).verdict is Verdict.TOO_LARGE


@pytest.mark.anyio
async def test_extension_takes_the_chunk_in_hand_even_past_the_budget(limiter: RateLimiter) -> None:
    k = key(tpm=100)
    await limiter.admit(k, "a", 10, 80)
    grant = await limiter.extend(k, 5, 20)  # 10 left: 5 for the chunk in hand, 5 more
    assert grant.granted == pytest.approx(10, abs=1)
    over = await limiter.extend(k, 3, 20)  # nothing left: the chunk is charged anyway, and refused
    assert over.granted < 3
    assert over.tokens_left < 0


@pytest.mark.anyio
async def test_concurrency_slot_held_until_settled(limiter: RateLimiter) -> None:
    k = key(max_concurrent=2)
    assert (await limiter.admit(k, "a", 1, 0)).verdict is Verdict.OK
    assert (await limiter.admit(k, "b", 1, 0)).verdict is Verdict.OK
    assert (await limiter.admit(k, "c", 1, 0)).verdict is Verdict.CONCURRENCY
    await limiter.settle(k, "a", 0)
    assert (await limiter.admit(k, "c", 1, 0)).verdict is Verdict.OK


@pytest.mark.anyio
async def test_memory_buckets_refill_with_time() -> None:
    now = [0.0]
    lim = MemoryLimiter(clock=lambda: now[0])
    k = key(rpm=60)
    for _ in range(60):
        assert (await lim.admit(k, "s", 1, 0)).verdict is Verdict.OK
    assert (await lim.admit(k, "s", 1, 0)).verdict is Verdict.REQUESTS
    now[0] += 1.0  # one request a second
    assert (await lim.admit(k, "s", 1, 0)).verdict is Verdict.OK
    assert (await lim.admit(k, "s", 1, 0)).verdict is Verdict.REQUESTS


@pytest.mark.anyio
async def test_redis_admissions_are_atomic_under_concurrency(redis: tuple[Redis, str]) -> None:
    client, prefix = redis
    # Two limiters: two gateways sharing the Redis.
    a, b = RedisLimiter(client, prefix, 30), RedisLimiter(client, prefix, 30)
    k = key(rpm=10, tpm=1000, max_concurrent=50)
    results = await asyncio.gather(*((a if i % 2 else b).admit(k, f"s{i}", 5, 0) for i in range(40)))
    assert sum(r.verdict is Verdict.OK for r in results) == 10
    bucket = f"{prefix}:rl:{{{k.id}}}"
    assert 0 < await client.pttl(bucket) <= 61_000
    assert 0 < await client.pttl(bucket + ":conc") <= 30_000


@pytest.mark.anyio
async def test_redis_slot_of_a_crashed_gateway_expires(redis: tuple[Redis, str]) -> None:
    client, prefix = redis
    crashed = RedisLimiter(client, prefix, 1.0)  # never settles, never refreshes: it crashed
    k = key(max_concurrent=1)
    assert (await crashed.admit(k, "lost", 1, 0)).verdict is Verdict.OK
    survivor = RedisLimiter(client, prefix, 1.0)
    assert (await survivor.admit(k, "next", 1, 0)).verdict is Verdict.CONCURRENCY
    await asyncio.sleep(1.1)
    assert (await survivor.admit(k, "next", 1, 0)).verdict is Verdict.OK


@pytest.mark.anyio
async def test_redis_slots_of_a_live_gateway_are_refreshed(redis: tuple[Redis, str]) -> None:
    client, prefix = redis
    live = RedisLimiter(client, prefix, 1.2)
    await live.start()
    try:
        k = key(max_concurrent=1)
        assert (await live.admit(k, "long", 1, 0)).verdict is Verdict.OK
        await asyncio.sleep(2.5)  # well past the slot TTL: refreshed every TTL/3
        other = RedisLimiter(client, prefix, 1.2)
        assert (await other.admit(k, "next", 1, 0)).verdict is Verdict.CONCURRENCY
        await live.settle(k, "long", 0)
        assert (await other.admit(k, "next", 1, 0)).verdict is Verdict.OK
    finally:
        await live.close()
