"""The engine status poller stops when closed, even when its probes complete at the moment it is cancelled."""

from __future__ import annotations

import asyncio

import pytest

from backends.http.poller import StatusPoller
from backends.protocol import Health, HealthState, Load


async def _health() -> Health:
    await asyncio.sleep(0)
    return Health(HealthState.OK)


async def _load() -> Load:
    await asyncio.sleep(0)
    return Load(waiting=0, running=0)


async def _no_wait(_: float) -> None:
    await asyncio.sleep(0)


@pytest.mark.timeout(30)
def test_close_stops_the_poller_whenever_the_cancellation_lands() -> None:
    # Regression: with asyncio.wait_for (Python 3.11) a cancellation arriving as a probe completed was
    # swallowed, the poller kept polling and close() never returned.
    async def go() -> None:
        for i in range(40):
            poller = StatusPoller(_health, _load, interval_s=0.001, timeout_s=1, sleep=_no_wait)
            await poller.start()
            for _ in range(i % 7):  # land the cancellation at different points of the probe cycle
                await asyncio.sleep(0)
            async with asyncio.timeout(5):
                await poller.close()
            assert poller.health.ok

    asyncio.run(go())
