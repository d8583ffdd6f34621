"""Background health and load polling: ``health()``/``load()`` answer from the last probe, never block on I/O."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable

from backends.protocol import Health, HealthState, Load

log = logging.getLogger("lockgate.backends.http")
Sleep = Callable[[float], Awaitable[None]]


class StatusPoller:
    def __init__(
        self,
        probe_health: Callable[[], Awaitable[Health]],
        probe_load: Callable[[], Awaitable[Load | None]],
        *,
        interval_s: float,
        timeout_s: float,
        sleep: Sleep = asyncio.sleep,
    ) -> None:
        self._probe_health = probe_health
        self._probe_load = probe_load
        self._interval = interval_s
        self._timeout = timeout_s
        self._sleep = sleep
        self.health = Health(HealthState.STARTING, "not probed yet")
        self.load: Load | None = None
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        await self.refresh()
        self._task = asyncio.create_task(self._run(), name="lockgate-engine-poller")

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def refresh(self) -> None:
        # asyncio.timeout, not wait_for: on Python 3.11 wait_for can swallow a cancellation that arrives as the
        # probe completes, and close() would then wait for a poller that never stops.
        try:
            async with asyncio.timeout(self._timeout):
                self.health = await self._probe_health()
        except TimeoutError:
            self.health = Health(HealthState.DOWN, f"health probe timed out after {self._timeout:g} s")
        except Exception as exc:  # a failing probe means a down engine, never a dead poller
            self.health = Health(HealthState.DOWN, f"health probe failed: {type(exc).__name__}: {exc}")
        if not self.health.ok:
            self.load = None
            return
        try:
            async with asyncio.timeout(self._timeout):
                self.load = await self._probe_load()
        except Exception as exc:  # load is advisory: keep serving without it
            log.debug("load probe failed: %s", exc)
            self.load = None

    async def _run(self) -> None:
        while True:
            await self._sleep(self._interval)
            await self.refresh()
