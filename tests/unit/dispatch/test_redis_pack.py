"""Packing jobs onto few workers (``dispatch.pack``), against the test Redis: the submit script's choice, then
gateways and workers in this process holding several long jobs at once, as a client at moderate concurrency."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections import Counter

import pytest
from redis.asyncio import Redis

from backends.events import Completed
from backends.protocol import Health, HealthState
from backends.sim.engine import SimBackend
from backends.sim.options import SimOptions
from dispatch.redis import RedisWorker
from dispatch.redis.keys import GROUP, Keys
from dispatch.redis.scripts import Scripts, take_when_rung
from dispatch.redis.ticket import RedisTicket
from dispatch.redis.wire import WorkerReport, encode_report
from gateway.config.redis_target import parse_url
from gateway.config.schema import DispatchConfig, TelemetryConfig
from observability.telemetry import Telemetry

from .redis_rig import URL, rig
from .test_redis_scripts import submit
from .test_redis_slots import drain, job
from .test_redis_wake import idle

pytestmark = pytest.mark.anyio


async def room(redis: Redis, keys: Keys) -> dict[bytes, float]:
    return dict(await redis.zrange(keys.room("b"), 0, -1, withscores=True))


async def test_a_submit_rings_the_worker_with_the_least_room_and_reserves_a_place(
        env: tuple[Redis, Scripts, Keys]) -> None:
    redis, scripts, keys = env
    await redis.zadd(keys.room("b"), {"w-full-soon": 1, "w-roomy": 3})
    await idle(scripts, keys, "w-idle", "top")  # an idle worker too: packing goes first
    reply = await submit(scripts, keys, 0, b"j1", depth=8)
    assert reply[0] == 1
    assert reply[2] == 2  # a packing worker's own bell
    assert await redis.llen(keys.worker_bell("b", "w-full-soon")) == 1
    assert not await redis.exists(keys.bell("b"))
    assert await room(redis, keys) == {b"w-roomy": 3}  # its last place taken: out of the set
    assert (await submit(scripts, keys, 0, b"j2", depth=8))[2] == 2
    assert await redis.llen(keys.worker_bell("b", "w-roomy")) == 1
    assert await room(redis, keys) == {b"w-roomy": 2}
    await redis.delete(keys.room("b"))
    assert (await submit(scripts, keys, 0, b"j3", depth=8))[2] == 1  # nobody packing: the warm idle worker
    assert (await submit(scripts, keys, 0, b"j4", depth=8))[2] == 0  # nobody idle either: the shared bell
    assert await redis.llen(keys.bell("b")) == 1


async def test_a_dead_workers_room_delays_a_job_by_a_block_at_most(env: tuple[Redis, Scripts, Keys]) -> None:
    redis, scripts, keys = env
    bells = [keys.worker_bell("b", "w-live"), keys.bell("b")]
    live = asyncio.create_task(take_when_rung(redis.client(), scripts, keys.queue_keys("b"), bells, 0.5,
                                              [GROUP, "w-live", 4, 60]))
    await asyncio.sleep(0.2)
    await redis.zadd(keys.room("b"), {"w-dead": 1})
    t0 = time.monotonic()
    assert (await submit(scripts, keys, 0, b"job-d"))[2] == 2  # the dead worker's bell rang
    rows = await asyncio.wait_for(live, 5)
    assert time.monotonic() - t0 < 1.5  # the live worker's BLPOP timed out and its TAKE found the job
    assert [r[2] for r in rows] == [[b"job", b"job-d"]]
    assert await room(redis, keys) == {}  # its one place was used up: the next job goes elsewhere


async def run_together(prefix: str, pack: int, jobs: int) -> tuple[list[RedisTicket], dict[str, int],
                                                                    list[RedisWorker], dict[bytes, float]]:
    """``jobs`` long jobs submitted one after another through 3 workers, all held at once; returns their tickets
    (each has run on ``ticket.worker``), the gateway's wakes by kind, the workers, and the room set after the last
    submit."""
    config = DispatchConfig(kind="redis", key_prefix=prefix, block_ms=300, pack=pack)
    async with rig(config, SimOptions(ttft_ms=2, tpot_ms=20), stagger_s=0.1) as r:
        tickets = []
        for i in range(jobs):
            tickets.append(await r.gateway.submit(job(i, f"held {i}", max_tokens=40)))  # ~0.8 s each
            await asyncio.sleep(0.05)  # taken, and the worker's room updated, before the next arrives
        held = {bytes(m): float(v) for m, v in await r.client.zrange(r.keys.room("sim"), 0, -1, withscores=True)}
        for ticket in tickets:
            events = await drain(ticket)
            assert isinstance(events[-1], Completed)
        return tickets, r.wakes(), r.workers, held


async def test_packing_fills_one_worker_up_to_pack_before_the_next() -> None:
    tickets, counted, workers, held = await run_together(f"lgp{uuid.uuid4().hex[:8]}", 4, 7)
    per_worker = Counter(t.worker for t in tickets)
    assert sorted(per_worker.values()) == [3, 4], per_worker  # the third worker gets none
    first = tickets[0].worker
    assert [t.worker for t in tickets[:4]] == [first] * 4
    assert [t.wake for t in tickets] == ["shared", "packed", "packed", "packed", "shared", "packed", "packed"]
    assert counted == {"shared": 2, "packed": 5}
    second = tickets[4].worker
    assert second is not None
    assert held == {second.encode(): 1}  # the full one left the set; the second has one place left
    assert {w.worker_id for w in workers} > {first, second}


async def test_without_packing_jobs_spread_over_every_worker() -> None:
    tickets, counted, _, held = await run_together(f"lgp{uuid.uuid4().hex[:8]}", 0, 7)
    per_worker = Counter(t.worker for t in tickets)
    assert sorted(per_worker.values()) == [2, 2, 3], per_worker
    assert counted == {"shared": 7}
    assert held == {}


async def test_want_takes_up_to_pack_then_one_at_a_time() -> None:
    config = DispatchConfig(kind="redis", key_prefix=f"lgp{uuid.uuid4().hex[:8]}", pack=4)
    sim = SimBackend("sim", SimOptions())
    worker = RedisWorker({"sim": sim}, config, target=parse_url(URL), telemetry=Telemetry.build(TelemetryConfig()),
                         concurrency={"sim": 6})
    try:
        lane = worker._lanes["sim"]
        wants = []
        for held in range(7):
            lane.active = {f"j{i}": object() for i in range(held)}  # type: ignore[misc]
            wants.append(worker._want(lane))
        assert wants == [4, 3, 2, 1, 1, 1, 0]  # at capacity (6): none
        # Room left: to pack, or to capacity where that is lower (a full worker is not rung: it is not listening).
        lane.active = {"j0": object()}  # type: ignore[dict-item]
        assert worker._room_left(lane) == 3
        lane.capacity = 2
        assert worker._room_left(lane) == 1
        lane.active = {"j0": object(), "j1": object()}  # type: ignore[dict-item]
        assert worker._room_left(lane) == 0
        unpacked = RedisWorker({"sim": sim}, DispatchConfig(kind="redis", key_prefix=config.key_prefix),
                               target=parse_url(URL), telemetry=Telemetry.build(TelemetryConfig()),
                               concurrency={"sim": 6})
        assert unpacked._want(unpacked._lanes["sim"]) == 6
        await unpacked.redis.aclose()
    finally:
        await worker.redis.aclose()


async def test_a_heartbeat_takes_a_dead_workers_room_away() -> None:
    prefix = f"lgp{uuid.uuid4().hex[:8]}"
    config = DispatchConfig(kind="redis", key_prefix=prefix, pack=4, heartbeat_interval_s=0.2)
    keys = Keys(prefix, config.priority_bands)
    client = Redis.from_url(URL)
    dead = WorkerReport(worker="w-dead", health=Health(HealthState.OK), load=None, running=2, capacity=8,
                        expires_ms=int(time.time() * 1000) - 1)
    await client.hset(keys.workers("sim"), "w-dead", encode_report(dead))
    await client.zadd(keys.room("sim"), {"w-dead": 2})
    await client.expire(keys.room("sim"), 60)
    await client.aclose()
    async with rig(config, SimOptions(), workers=1) as r:
        deadline = time.monotonic() + 5
        while await r.client.zscore(keys.room("sim"), "w-dead") is not None:
            assert time.monotonic() < deadline, "the dead worker's room was never taken away"
            await asyncio.sleep(0.05)
        assert not await r.client.hexists(keys.workers("sim"), "w-dead")


async def test_a_burst_past_pack_spreads_over_the_workers_and_all_of_it_runs() -> None:
    # A closed loop's wave: many jobs at once. Each worker takes up to pack, then one per take, so the first
    # worker to wake does not take the whole wave (as it would take every free slot without packing).
    config = DispatchConfig(kind="redis", key_prefix=f"lgp{uuid.uuid4().hex[:8]}", block_ms=300, pack=4)
    async with rig(config, SimOptions(ttft_ms=5, tpot_ms=10)) as r:
        tickets = await asyncio.gather(*(r.gateway.submit(job(i, f"wave {i}", max_tokens=20)) for i in range(36)))
        results = await asyncio.wait_for(asyncio.gather(*(drain(t) for t in tickets)), 30)
        assert all(isinstance(events[-1], Completed) for events in results)
        per_worker = Counter(t.worker for t in tickets)
        assert set(per_worker) == {w.worker_id for w in r.workers}, per_worker
        assert max(per_worker.values()) <= 24, per_worker  # without packing: 34 of 36 on the first (measured)
