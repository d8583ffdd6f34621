"""Watchdog: a timeout per wait with one lazily re-armed timer, asyncio.timeout's semantics."""

from __future__ import annotations

import asyncio

import pytest

from gateway.watchdog import Watchdog

pytestmark = pytest.mark.anyio


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


async def wait(dog: Watchdog, seconds: float, timeout_s: float | None = None) -> str:
    dog.begin(timeout_s)
    try:
        await asyncio.sleep(seconds)
    except asyncio.CancelledError:
        dog.end()
        if dog.expired():
            return "timeout"
        raise
    finally:
        dog.end()
    return "ok"


async def test_one_wait_longer_than_the_timeout_times_out() -> None:
    dog = Watchdog(0.05, asyncio.get_running_loop())
    assert await wait(dog, 0.01) == "ok"
    assert await wait(dog, 0.5) == "timeout"
    assert await wait(dog, 0.01) == "ok"  # usable again afterwards
    dog.close()


async def test_many_short_waits_spanning_the_timeout_do_not() -> None:
    dog = Watchdog(0.05, asyncio.get_running_loop())
    for _ in range(15):
        assert await wait(dog, 0.01) == "ok"  # 150 ms of waits, each under 50 ms
    await asyncio.sleep(0.1)  # not waiting: the timer must not fire at all
    assert not dog.fired
    dog.close()


async def test_another_cancellation_still_propagates() -> None:
    dog = Watchdog(10, asyncio.get_running_loop())
    task = asyncio.create_task(wait(dog, 5))
    await asyncio.sleep(0.01)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    dog.close()


async def test_close_disarms() -> None:
    dog = Watchdog(0.02, asyncio.get_running_loop())
    dog.begin()
    dog.close()
    await asyncio.sleep(0.05)
    dog.end()
    assert not dog.fired


async def test_a_shorter_timeout_for_one_wait_fires_on_time_despite_a_timer_armed_for_longer() -> None:
    # The engine stream's deadlines: a long one until the first token, then a short one between chunks.
    loop = asyncio.get_running_loop()
    dog = Watchdog(10, loop)
    assert await wait(dog, 0.01) == "ok"  # arms the timer 10 s out
    started = loop.time()
    assert await wait(dog, 2, timeout_s=0.05) == "timeout"
    assert loop.time() - started < 1
    assert await wait(dog, 0.1, timeout_s=0.05) == "timeout"
    assert await wait(dog, 0.1) == "ok"  # back to the default: 10 s
    dog.close()
