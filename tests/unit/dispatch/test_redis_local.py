"""``dispatch.local``: a gateway whose own process runs a worker starts a job there at once, while the submit records
it in Redis (dispatch/redis/local.py). Against the test Redis: the script's two answers, then a gateway with its
own worker among others."""

from __future__ import annotations

import asyncio
import uuid

import pytest
from redis.asyncio import Redis

from backends.events import Completed, Delta, Event, Failed, Started
from backends.sim.engine import SimBackend
from backends.sim.options import SimOptions
from dispatch.redis import RedisDispatcher, RedisWorker
from dispatch.redis.keys import GROUP, Keys
from dispatch.redis.scripts import Scripts
from gateway.config.redis_target import parse_url
from gateway.config.schema import DispatchConfig, TelemetryConfig
from observability.telemetry import Telemetry

from .redis_rig import URL, Rig, clear_prefix, rig
from .test_redis_scripts import submit
from .test_redis_slots import drain, job
from .test_redis_wake import idle

pytestmark = pytest.mark.anyio


async def submit_local(scripts: Scripts, keys: Keys, payload: bytes, consumer: str) -> list[object]:
    result: list[object] = await scripts.submit(
        keys=keys.queue_keys("b"), args=[2, 8, payload, 60, GROUP, payload.decode(), "t", consumer])
    return result


async def test_with_nothing_waiting_the_job_goes_into_the_local_consumers_pending_list(
        env: tuple[Redis, Scripts, Keys]) -> None:
    redis, scripts, keys = env
    await idle(scripts, keys, "w-here", "top")  # the local worker was idle: it is not any more
    await idle(scripts, keys, "w-other", "keep")
    reply = await submit_local(scripts, keys, b"j1", "w-here")
    assert reply[0] == 1
    assert reply[2] == 3
    stream = keys.jobs("b", 0)
    pending = await redis.xpending_range(stream, GROUP, "-", "+", 10)
    assert [(p["message_id"], p["consumer"]) for p in pending] == [(reply[3], b"w-here")]
    assert (await redis.xrange(stream))[0][1] == {b"job": b"j1"}  # reclaimable: the payload is in the entry
    assert await redis.zcard(keys.fair("b", 0)) == 0
    assert not await redis.hlen(keys.payloads("b"))
    assert not await redis.exists(keys.bell("b"))  # no worker rung
    assert await redis.lrange(keys.idle("b"), 0, -1) == [b"w-other"]
    assert await redis.ttl(stream) > 0


async def test_with_a_job_waiting_it_queues_behind_it_in_fair_order(env: tuple[Redis, Scripts, Keys]) -> None:
    redis, scripts, keys = env
    assert (await submit(scripts, keys, 0, b"j-first"))[2] == 0  # nobody idle: it waits
    reply = await submit_local(scripts, keys, b"j-local", "w-here")
    assert reply[0] == 1
    assert reply[2] == 0
    assert await redis.zrange(keys.fair("b", 0), 0, -1) == [b"j-first", b"j-local"]
    assert await redis.xlen(keys.jobs("b", 0)) == 0


async def test_without_a_consumer_group_it_queues_and_leaves_no_entry(env: tuple[Redis, Scripts, Keys]) -> None:
    redis, scripts, keys = env
    await redis.delete(*keys.job_streams("b"))  # a Redis restart: no groups until a worker's next take
    reply = await submit_local(scripts, keys, b"j1", "w-here")
    assert reply[0] == 1
    assert reply[2] == 0
    assert await redis.zrange(keys.fair("b", 0), 0, -1) == [b"j1"]
    assert await redis.xlen(keys.jobs("b", 0)) == 0


def local_config(**kw: object) -> DispatchConfig:
    return DispatchConfig(kind="redis", key_prefix=f"lgl{uuid.uuid4().hex[:8]}", block_ms=300, local=True, **kw)


async def no_pending(r: Rig) -> bool:
    return [(await r.client.xpending(s, GROUP))["pending"] for s in r.keys.job_streams("sim")] == [0, 0]


async def test_a_job_runs_on_the_gateways_own_worker_and_its_events_skip_redis() -> None:
    async with rig(local_config(), SimOptions(ttft_ms=5, tpot_ms=1)) as r:
        tickets = [await r.gateway.submit(job(i, f"local {i}", max_tokens=12)) for i in range(3)]
        runs = [await drain(t) for t in tickets]
        own = r.workers[0].worker_id
        for ticket, events in zip(tickets, runs, strict=True):
            assert ticket.wake == "local"
            assert ticket.worker == own
            assert isinstance(events[0], Started)
            assert isinstance(events[-1], Completed)
            assert sum(e.tokens for e in events if isinstance(e, Delta)) == 12
        assert r.wakes() == {"local": 3}
        # Only the inbox's opening entry: no event went through Redis.
        assert await r.client.xlen(r.gateway.inbox.key) <= 1
        await asyncio.sleep(0.1)  # the acknowledgement follows the terminal event's delivery
        assert await no_pending(r)
        assert sum([await r.client.xlen(s) for s in r.keys.job_streams("sim")]) == 0
        leftovers = [k async for k in r.client.scan_iter(match=f"{r.keys.prefix}:gw:*")]
        assert [k for k in leftovers if b":streamed:" in k or b":cancel:" in k] == []


async def test_jobs_that_start_and_end_together_share_their_redis_writes() -> None:
    # 12 jobs at once, as at a closed loop's wave: 12 markers and 12 acknowledgements, in a few pipelines.
    async with rig(local_config(), SimOptions(ttft_ms=5, tpot_ms=2), workers=1) as r:
        tickets = await asyncio.gather(*(r.gateway.submit(job(i, f"wave {i}", max_tokens=10)) for i in range(12)))
        done = await asyncio.gather(*(drain(t) for t in tickets))
        assert all(isinstance(events[-1], Completed) for events in done)
        assert {t.wake for t in tickets} == {"local"}
        await asyncio.sleep(0.1)
        assert await no_pending(r)
        assert 2 <= r.workers[0].book.pipelines <= 8


async def test_a_local_start_never_fills_the_lane_past_its_capacity() -> None:
    """Capacity 2, ``pack = 1``: the worker's blocked take has asked for 1 job, so one slot is free for a local start
    and no more; the next jobs go through the queue, and the worker never holds more than 2."""
    async with rig(local_config(pack=1), SimOptions(ttft_ms=5, tpot_ms=5, max_concurrency=2), workers=2) as r:
        lane = r.workers[0]._lanes["sim"]
        most = 0

        async def watch() -> None:
            nonlocal most
            while True:
                most = max(most, len(lane.active))
                await asyncio.sleep(0.002)

        watcher = asyncio.create_task(watch())
        tickets = [await r.gateway.submit(job(1, "long", max_tokens=40))]
        await asyncio.sleep(0.05)
        tickets += [await r.gateway.submit(job(i, f"more {i}", max_tokens=20)) for i in (2, 3)]
        done = await asyncio.gather(*(drain(t) for t in tickets))
        watcher.cancel()
        assert all(isinstance(events[-1], Completed) for events in done)
        assert [t.wake == "local" for t in tickets] == [True, False, False]
        assert tickets[0].worker == r.workers[0].worker_id
        assert 1 <= most <= 2
        await asyncio.sleep(0.1)
        assert await no_pending(r)


async def test_a_cancelled_local_job_stops_in_the_engine_and_is_acknowledged() -> None:
    async with rig(local_config(), SimOptions(ttft_ms=5, tpot_ms=20)) as r:
        ticket = await r.gateway.submit(job(1, "cancel me", max_tokens=200))
        events = ticket.events()
        assert isinstance(await anext(events), Started)
        assert isinstance(await anext(events), Delta)
        await ticket.cancel()
        own = r.workers[0]

        async def settled() -> bool:
            return not own._by_job and await no_pending(r)

        for _ in range(100):
            if await settled():
                break
            await asyncio.sleep(0.02)
        assert await settled()


async def test_a_failure_before_the_submits_answer_is_held_for_it_then_delivered() -> None:
    # The engine fails at once, before the submit's reply can arrive: the terminal event waits for it.
    sim = SimOptions(ttft_ms=0, fault="fail_before_first_token")
    async with rig(local_config(), sim) as r:
        ticket = await r.gateway.submit(job(1, "fail"))
        events: list[Event] = await drain(ticket)
        assert ticket.wake == "local"
        assert isinstance(events[-1], Failed)
        await asyncio.sleep(0.1)
        assert await no_pending(r)


async def test_a_local_start_is_withdrawn_when_jobs_wait_and_the_job_keeps_its_place() -> None:
    """The gateway's own worker is not taking from the queue (never started), so a job submitted by another gateway
    waits; the local start of the next job is aborted and that job queues behind it; a worker then runs both."""
    config = local_config()
    target = parse_url(URL)
    telemetry = Telemetry.build(TelemetryConfig())
    backend = SimBackend("sim", SimOptions(ttft_ms=5, tpot_ms=1))
    await backend.start()
    keys = Keys(config.key_prefix, config.priority_bands)
    client = Redis.from_url(URL)
    own = RedisWorker({"sim": backend}, config, target=target, telemetry=telemetry)
    other = RedisDispatcher(config, target=target, backends=["sim"], telemetry=telemetry, max_queue_depth=8,
                            retry_after_s=1)
    here = RedisDispatcher(config, target=target, backends=["sim"], telemetry=telemetry, max_queue_depth=8,
                           retry_after_s=1, local=own)
    fleet = RedisWorker({"sim": backend}, config, target=target, telemetry=telemetry)
    await other.start()
    await here.start()
    try:
        first = await other.submit(job(1, "waits"))
        second = await here.submit(job(2, "withdrawn"))
        assert second.wake != "local"
        await asyncio.sleep(0.05)
        assert not own._by_job  # the local run was aborted
        assert await client.zrange(keys.fair("sim", 0), 0, -1) == [first.job.id.encode(), second.job.id.encode()]
        await fleet.start()
        done = await asyncio.gather(drain(first), drain(second))
        assert all(isinstance(events[-1], Completed) for events in done)
        assert first.worker == second.worker == fleet.worker_id
    finally:
        await fleet.stop()
        await own.stop()
        await here.close()
        await other.close()
        await backend.close()
        without_ttl = await clear_prefix(client, config.key_prefix)
        await client.aclose()
    assert without_ttl == []
