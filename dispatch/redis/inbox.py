"""A gateway's inbox: one stream that every worker writes this gateway's events to, read by one loop.

One ``XREAD BLOCK`` loop per gateway process hands events to per-request tickets (not one subscription per
request). When Redis fails or the inbox vanishes (Redis restarted), every in-flight ticket fails at once with
a 503 and the inbox is recreated: new requests work again as soon as Redis answers.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from typing import Any

import msgspec

from backends.events import Failed
from dispatch.redis.connection import REDIS_ERRORS, RedisClient
from dispatch.redis.ticket import RedisTicket
from dispatch.redis.wire import decode_events

log = logging.getLogger("lockgate.dispatch.redis")


def redis_lost() -> Failed:
    return Failed(type="server_error", code="dispatch_unavailable", status=503,
                  message="The connection to the job queue (Redis) was lost while this request was running.")


class Inbox:
    def __init__(self, redis: RedisClient, key: str, *, ttl_s: float, block_ms: int) -> None:
        self.redis = redis
        self.key = key
        self._ttl_ms = int(ttl_s * 1000)
        self._block_ms = block_ms
        self._refresh_every = ttl_s / 4
        self.tickets: dict[str, RedisTicket] = {}
        self.drained = asyncio.Event()
        """Set while no request is in flight (graceful shutdown waits on it)."""
        self.drained.set()
        self.healthy = False
        self._last_id = b"0-0"
        self._next_refresh = 0.0
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        try:
            await self._create()
        except REDIS_ERRORS as exc:
            # Start anyway: the loop keeps trying, and /readyz says not ready meanwhile.
            log.warning("inbox %s: Redis not reachable yet (%s)", self.key, exc)
        self._task = asyncio.create_task(self._run(), name="lockgate-inbox")

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        for ticket in list(self.tickets.values()):
            ticket.fail(Failed(type="server_error", status=503, message="the gateway is shutting down"))
        with contextlib.suppress(*REDIS_ERRORS):  # else it expires on its own
            await self.redis.delete(self.key)

    def register(self, ticket: RedisTicket) -> None:
        self.tickets[ticket.job.id] = ticket
        self.drained.clear()

    def unregister(self, ticket: RedisTicket) -> None:
        if self.tickets.get(ticket.job.id) is ticket:
            del self.tickets[ticket.job.id]
            if not self.tickets:
                self.drained.set()

    async def _create(self) -> None:
        # A stream exists only with an entry in it; the marker entry is trimmed away with the first refresh.
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.xadd(self.key, {"hello": "1"})
            pipe.pexpire(self.key, self._ttl_ms)
            entry_id, _ = await pipe.execute()
        # Read from here: after a Redis restart ids start over, so an old last id would skip new entries.
        self._last_id = entry_id
        self._next_refresh = time.monotonic() + self._refresh_every
        self.healthy = True

    async def _run(self) -> None:
        backoff = 0.05
        while True:
            try:
                if not self.healthy:
                    await self._create()
                    log.info("inbox %s: (re)created", self.key)
                    backoff = 0.05
                reply: Any = await self.redis.xread({self.key: self._last_id}, count=1024, block=self._block_ms)
                for _, entries in reply or ():
                    for entry_id, fields in entries:
                        self._last_id = entry_id
                        self._dispatch(fields)
                if time.monotonic() >= self._next_refresh:
                    await self._refresh()
            except asyncio.CancelledError:
                raise
            except REDIS_ERRORS as exc:
                self._lost(f"{type(exc).__name__}: {exc}")
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 1.0)

    async def _refresh(self) -> None:
        async with self.redis.pipeline(transaction=False) as pipe:
            pipe.pexpire(self.key, self._ttl_ms)
            pipe.xtrim(self.key, minid=self._last_id, approximate=False)
            existed, _ = await pipe.execute()
        self._next_refresh = time.monotonic() + self._refresh_every
        if not existed:
            # Expired or Redis restarted under us: workers cannot reach in-flight requests any more.
            self._lost("inbox stream vanished")

    def master_changed(self, why: str) -> None:
        """A Sentinel failover: events of in-flight requests may be on the old master, lost with it. They fail
        now; the inbox is recreated on the new master once the read blocked on the old one returns."""
        self._lost(why)

    def _lost(self, why: str) -> None:
        if self.healthy or self.tickets:
            log.warning("inbox %s lost (%s): failing %d in-flight request(s)", self.key, why, len(self.tickets))
        self.healthy = False
        for ticket in list(self.tickets.values()):
            ticket.fail(redis_lost())

    def _dispatch(self, fields: dict[bytes, bytes]) -> None:
        job_id = fields.get(b"j")
        if job_id is None:
            return
        ticket = self.tickets.get(job_id.decode())
        if ticket is None:
            return  # finished or cancelled: late events are dropped
        try:
            events = decode_events(fields[b"e"])
        except (KeyError, msgspec.DecodeError):
            log.error("inbox %s: undecodable entry for job %s", self.key, job_id)
            return
        ticket.deliver(fields.get(b"w", b"").decode(), events)
