"""The gateway's health poller: a probe that overruns its interval is this process being busy, not the backends
being down; only several in a row (or a failing probe) turn the backends down."""

from __future__ import annotations

import asyncio

import pytest

from backends.protocol import HealthState
from dispatch.contract import BackendStatus
from gateway.runtime import SLOW_PROBES_BEFORE_DOWN, Runtime
from tests.support.configs import sim_config


@pytest.mark.anyio
async def test_slow_probes_keep_the_last_status_until_several_in_a_row() -> None:
    runtime = Runtime(sim_config(routing={"health_interval_s": 0.05}))
    await runtime.poll_health()  # a real probe of the (not started) embedded dispatcher
    healthy = dict(runtime.status)
    assert healthy
    real_status = runtime.dispatcher.status

    async def slow() -> dict[str, BackendStatus]:
        await asyncio.sleep(1)
        return await real_status()

    runtime.dispatcher.status = slow  # type: ignore[method-assign]
    for _ in range(SLOW_PROBES_BEFORE_DOWN - 1):
        await runtime.poll_health()
        assert runtime.status == healthy
    await runtime.poll_health()
    assert {s.health.state for s in runtime.status.values()} == {HealthState.DOWN}
    assert "timed out" in next(iter(runtime.status.values())).health.reason

    runtime.dispatcher.status = real_status  # type: ignore[method-assign]
    await runtime.poll_health()
    assert runtime.status == healthy


@pytest.mark.anyio
async def test_a_failing_probe_turns_the_backends_down_at_once() -> None:
    runtime = Runtime(sim_config())

    async def broken() -> dict[str, BackendStatus]:
        raise ConnectionError("Redis gone")

    runtime.dispatcher.status = broken  # type: ignore[method-assign]
    await runtime.poll_health()
    assert {s.health.state for s in runtime.status.values()} == {HealthState.DOWN}
