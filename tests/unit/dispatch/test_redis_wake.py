"""Which idle worker a new job wakes (``dispatch.wake``), against the test Redis: the scripts one by one, then
gateways and workers in this process running jobs one after another, as a client at concurrency 1 does."""

from __future__ import annotations

import asyncio
import time
import uuid
from typing import Literal

import pytest
from redis.asyncio import Redis

from backends.events import Completed
from backends.sim.options import SimOptions
from dispatch.redis.keys import GROUP, Keys
from dispatch.redis.scripts import Scripts, take_when_rung
from gateway.config.schema import DispatchConfig

from .redis_rig import rig
from .test_redis_scripts import submit
from .test_redis_slots import drain, job

pytestmark = pytest.mark.anyio


async def idle(scripts: Scripts, keys: Keys, worker: str, mode: str) -> None:
    await scripts.idle(keys=[keys.idle("b")], args=[worker, 60, mode])


async def stack(redis: Redis, keys: Keys) -> list[bytes]:
    return list(await redis.lrange(keys.idle("b"), 0, -1))


async def test_the_last_worker_to_become_idle_gets_its_own_bell(env: tuple[Redis, Scripts, Keys]) -> None:
    redis, scripts, keys = env
    for w in ("w1", "w2", "w3"):
        await idle(scripts, keys, w, "top")
    reply = await submit(scripts, keys, 0, b"j")
    assert reply[0] == 1
    assert reply[2] == 1  # a worker's own bell rang
    assert await redis.llen(keys.worker_bell("b", "w3")) == 1
    assert not await redis.exists(keys.worker_bell("b", "w2"))
    assert not await redis.exists(keys.bell("b"))  # not the shared one: it would wake the coldest for nothing
    assert 0 < await redis.ttl(keys.worker_bell("b", "w3")) <= 60
    assert await stack(redis, keys) == [b"w2", b"w1"]
    # No worker idle: the shared bell.
    await redis.delete(keys.idle("b"))
    assert (await submit(scripts, keys, 0, b"k"))[2] == 0
    assert await redis.llen(keys.bell("b")) == 1


async def test_keep_leaves_an_idle_workers_place_and_top_moves_it(env: tuple[Redis, Scripts, Keys]) -> None:
    redis, scripts, keys = env
    await idle(scripts, keys, "w1", "top")
    await idle(scripts, keys, "w2", "top")
    await idle(scripts, keys, "w1", "keep")  # blocking again after a timeout: still colder than w2
    assert await stack(redis, keys) == [b"w2", b"w1"]
    await idle(scripts, keys, "w3", "keep")  # missing (a submit popped it, another took the job): at the bottom
    assert await stack(redis, keys) == [b"w2", b"w1", b"w3"]
    await idle(scripts, keys, "w1", "top")  # its job just ended: the warmest, once
    assert await stack(redis, keys) == [b"w1", b"w2", b"w3"]
    assert 0 < await redis.ttl(keys.idle("b")) <= 60


async def test_a_worker_that_takes_a_job_leaves_the_stack(env: tuple[Redis, Scripts, Keys]) -> None:
    redis, scripts, keys = env
    await idle(scripts, keys, "w1", "top")
    await idle(scripts, keys, "w2", "top")
    await submit(scripts, keys, 0, b"j")  # pops w2; say w2 was not waiting and w1's BLPOP timed out
    assert await stack(redis, keys) == [b"w1"]
    rows = await scripts.take(keys=keys.queue_keys("b"), args=[GROUP, "w1", 4, 60])
    assert len(rows) == 1
    assert await stack(redis, keys) == []  # busy now: the next job goes to an idle worker, if any


async def wait_rung(redis: Redis, scripts: Scripts, keys: Keys, worker: str, timeout_s: float) -> list[object]:
    bells = [keys.worker_bell("b", worker), keys.bell("b")]
    return await take_when_rung(redis, scripts, keys.queue_keys("b"), bells, timeout_s, [GROUP, worker, 4, 60],
                                [worker, 60, "keep"])


async def test_the_warm_worker_takes_the_job_though_another_waited_longer(env: tuple[Redis, Scripts, Keys]) -> None:
    redis, scripts, keys = env
    # w-old blocks first: Redis's first-come order on the shared bell would hand it the job.
    old = asyncio.create_task(wait_rung(redis.client(), scripts, keys, "w-old", 1.5))
    await asyncio.sleep(0.2)
    new = asyncio.create_task(wait_rung(redis.client(), scripts, keys, "w-new", 10.0))
    await asyncio.sleep(0.2)
    await idle(scripts, keys, "w-new", "top")  # w-new's last job just ended
    t0 = time.monotonic()
    await submit(scripts, keys, 0, b"job-a")
    got_new = await asyncio.wait_for(new, 5)
    assert time.monotonic() - t0 < 1  # woken by the submit, not by its 10 s timeout
    assert [r[2] for r in got_new] == [[b"job", b"job-a"]]  # type: ignore[index]
    assert not old.done()  # left asleep: nothing rang the shared bell
    assert await asyncio.wait_for(old, 5) == []  # its timeout
    assert await stack(redis, keys) == [b"w-old"]


async def test_a_dead_workers_place_on_the_stack_delays_one_job_by_a_block_at_most(
        env: tuple[Redis, Scripts, Keys]) -> None:
    redis, scripts, keys = env
    live = asyncio.create_task(wait_rung(redis.client(), scripts, keys, "w-live", 0.5))  # block_ms = 500
    await asyncio.sleep(0.2)
    await idle(scripts, keys, "w-dead", "top")  # a worker that died while idle, on top
    t0 = time.monotonic()
    assert (await submit(scripts, keys, 0, b"job-b"))[2] == 1  # the dead worker's bell rang
    rows = await asyncio.wait_for(live, 5)
    # The live worker's BLPOP timed out and its TAKE found the job: not lost, late by what was left of the block.
    assert time.monotonic() - t0 < 1.5
    assert [r[2] for r in rows] == [[b"job", b"job-b"]]  # type: ignore[index]
    assert b"w-dead" not in await stack(redis, keys)  # popped once: the next job goes to a live worker
    assert 0 < await redis.ttl(keys.worker_bell("b", "w-dead")) <= 60  # the unanswered bell expires


async def run_in_sequence(prefix: str, wake: Literal["warm", "fifo"], jobs: int
                          ) -> tuple[list[tuple[str, str]], dict[str, int]]:
    """``jobs`` jobs one after another through 3 workers: (the worker that ran it, how it was woken) each, and
    the gateway's ``lockgate.dispatch.wakes`` by ``lockgate.dispatch.wake``."""
    config = DispatchConfig(kind="redis", key_prefix=prefix, block_ms=300, wake=wake)
    out = []
    async with rig(config, SimOptions(ttft_ms=2, tpot_ms=1), stagger_s=0.1, max_queue_depth=16) as r:
        for i in range(jobs):
            ticket = await r.gateway.submit(job(i, f"seq {i}", max_tokens=3))
            events = await drain(ticket)
            assert isinstance(events[-1], Completed)
            assert ticket.worker is not None
            out.append((ticket.worker, ticket.wake))
            await asyncio.sleep(0.02)  # the client's think time: the worker has settled
        return out, r.wakes()


async def test_warm_wake_keeps_sequential_jobs_on_the_worker_that_just_finished() -> None:
    served, counted = await run_in_sequence(f"lgw{uuid.uuid4().hex[:8]}", "warm", 6)
    first = served[0][0]
    assert [w for w, _ in served] == [first] * 6, served
    assert [how for _, how in served] == ["warm"] * 6
    assert counted == {"warm": 6}


async def test_fifo_wake_hands_sequential_jobs_round_the_workers() -> None:
    served, counted = await run_in_sequence(f"lgw{uuid.uuid4().hex[:8]}", "fifo", 6)
    assert len({w for w, _ in served}) == 3, served  # the one idle longest, each time
    assert [how for _, how in served] == ["shared"] * 6
    assert counted == {"shared": 6}
