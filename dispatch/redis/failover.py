"""Noticing a Sentinel failover at once, instead of when the old master happens to be demoted.

After ``SENTINEL FAILOVER`` (or a master that went silent), the Sentinels promote a replica; the old master,
when still up, keeps accepting writes until a Sentinel reconfigures it as a replica, which can take 10 s.
redis-py asks the Sentinel for the master only when it opens a connection, so pooled connections would
keep writing to the old master meanwhile, and every such write is lost when it becomes a replica.

``MasterWatch`` asks the Sentinels every ``interval_s``. On a new master it points the pool there (idle
connections to the old one are closed) and calls ``on_change``: the gateway fails its in-flight requests
(their events may be on either side), the worker aborts its jobs and resubscribes. A Cluster handles its own
failovers (MOVED, CLUSTERDOWN); a standalone Redis has none: there the watch does nothing.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable

from redis.asyncio import Redis
from redis.asyncio.sentinel import SentinelConnectionPool

from dispatch.redis.connection import REDIS_ERRORS, RedisClient
from observability.telemetry import Telemetry

log = logging.getLogger("lockgate.dispatch.redis")


class MasterWatch:
    def __init__(self, client: RedisClient, *, interval_s: float, on_change: Callable[[str], None],
                 telemetry: Telemetry, role: str) -> None:
        pool = client.connection_pool if isinstance(client, Redis) else None
        self._pool = pool if isinstance(pool, SentinelConnectionPool) else None
        self._interval = interval_s
        self._on_change = on_change
        self._telemetry = telemetry
        self._role = role
        self._master: tuple[str, int] | None = None
        self._task: asyncio.Task[None] | None = None
        self._failovers = telemetry.meter.create_counter(
            "lockgate.dispatch.failovers", unit="{failover}",
            description="Redis master changes (Sentinel failovers) seen by this process")

    def start(self) -> None:
        if self._pool is not None:
            self._task = asyncio.create_task(self._run(), name="lockgate-sentinel-watch")

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def _run(self) -> None:
        assert self._pool is not None
        while True:
            try:
                # Also re-points the pool and closes idle connections to a previous master.
                master = tuple(await self._pool.get_master_address())  # type: ignore[no-untyped-call]
            except REDIS_ERRORS as exc:  # no Sentinel answered, or none knows a master: try again
                log.debug("sentinel watch: %s", exc)
            else:
                address = (str(master[0]), int(master[1]))
                if self._master is not None and address != self._master:
                    self._changed(self._master, address)
                self._master = address
            await asyncio.sleep(self._interval)

    def _changed(self, old: tuple[str, int], new: tuple[str, int]) -> None:
        what = f"Redis master changed from {old[0]}:{old[1]} to {new[0]}:{new[1]}"
        log.warning("%s (%s): dropping what was in flight", what, self._role)
        attributes: dict[str, str | int] = {"lockgate.role": self._role, "server.address": new[0],
                                            "server.port": new[1]}
        self._failovers.add(1, {"lockgate.role": self._role})
        with self._telemetry.tracer.start_as_current_span("redis failover", attributes=attributes):
            self._on_change(what)
