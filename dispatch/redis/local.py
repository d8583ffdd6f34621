"""``dispatch.local``: a job started by the worker in its gateway's own process while its submit is in flight.

Through Redis a job's first token crosses two hops between processes (gateway -> Redis -> worker, worker -> Redis
-> gateway), each a wake-up of an idle process: about 2 ms at one request at a time on the GPU bake-off's host.
A process that runs both (``lockgate serve`` with Redis dispatch) needs neither when its own worker has room: the
worker starts the job at once and its events go straight to the ticket, while the submit script records the job in
Redis, in that worker's pending list (scripts.py, SUBMIT): the Redis round trip overlaps the engine's time to first
token instead of preceding it. Redis still holds what makes the job safe and visible to the fleet: it counts for
admission, it is heartbeated, a reclaim takes it if the process dies (the streamed marker is set with the first
token, so it is not run again), and it is acknowledged after its terminal event.

Nothing reaches the client before the submit's reply: events wait in the outbox until the job is ``confirm``-ed
(the reply put it in this worker's pending list) or ``withdraw``-n (jobs were waiting, so it queued for the fleet
in its tenants' fair order, or the submit failed); a withdrawn run is aborted and never acknowledged.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Protocol

from backends.events import TERMINAL, Delta, Event
from dispatch.job import Job
from dispatch.redis.connection import REDIS_ERRORS, RedisClient
from dispatch.redis.keys import GROUP, Keys
from dispatch.redis.outbox import InboxUnreachable, JobCancelled, StopJob
from dispatch.redis.ticket import RedisTicket


class Withdrawn(StopJob):
    """The submit did not hand the job to this worker: it runs elsewhere (or nowhere); stop without a trace."""


class LocalStart(Protocol):
    """What the gateway holds of a job its own worker started: settle it with the submit's answer."""

    consumer: str
    """The worker's consumer id, for the submit script."""
    begun: asyncio.Event
    """Set once the run emitted its first event (it has then sent its engine request) or ended."""

    def confirm(self, stream: str, entry_id: str) -> None: ...

    def withdraw(self) -> None: ...


class LocalWorkers(Protocol):
    """The workers in the gateway's own process (``RedisWorker``), as the gateway's submit sees them."""

    def start_local(self, job: Job, ticket: RedisTicket) -> LocalStart | None:
        """Start ``job`` now if a worker of its backend here has a free slot, else None."""
        ...

    def cancel(self, job_id: str) -> bool: ...


class LocalOutbox:
    """A local job's events: held until the submit's answer, then handed to the ticket as they come.

    Same interface as ``Outbox`` (the worker's run path does not know which it has). Redis gets the streamed
    marker with the first token (written beside the delivery: the client is in this process, so a crash loses
    nobody's tokens) and the acknowledgement after the terminal event."""

    def __init__(self, redis: RedisClient, ticket: RedisTicket, *, worker_id: str, marker_ttl_s: int) -> None:
        self._redis = redis
        self._ticket = ticket
        self._worker = worker_id
        self._marker_ttl = marker_ttl_s
        self._held: list[Event] = []
        self._settled = asyncio.Event()
        self.begun = asyncio.Event()
        self._withdrawn = False
        self._marker: asyncio.Task[None] | None = None
        self._ack: tuple[str, str] | None = None
        self.token_sent = False
        self.acked = False
        self.writes = 0

    # -- the submit's answer -------------------------------------------------------------------------------

    def confirm(self, stream: str, entry_id: str) -> None:
        self._ack = (stream, entry_id)
        self._settled.set()
        held, self._held = self._held, []
        if held:
            self._deliver(held)

    def withdraw(self) -> None:
        self._withdrawn = True
        self._held.clear()
        self._settled.set()

    async def settled(self) -> bool:
        """Wait for the submit's answer: whether the job is this worker's (confirmed) or not (withdrawn)."""
        await self._settled.wait()
        return not self._withdrawn

    # -- the worker's side -----------------------------------------------------------------------------------

    async def emit(self, event: Event) -> None:
        self.begun.set()
        self._check()
        if not self._settled.is_set():
            self._held.append(event)
            if isinstance(event, TERMINAL):  # an answer in under a round trip (a failure): wait for the submit
                await self._settled.wait()
                if self._withdrawn:
                    raise Withdrawn()
                await self._acknowledge()  # confirm() has delivered it
            return
        self._deliver([event])
        if isinstance(event, TERMINAL):
            await self._acknowledge()

    async def flush(self) -> None:
        if self._marker is not None:
            await self._marker

    def abort(self) -> None:
        pass

    async def close(self) -> None:
        if self._marker is not None and not self._marker.done():
            self._marker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._marker

    def _check(self) -> None:
        if self._withdrawn:
            raise Withdrawn()
        if self._ticket.done:  # the client went away, read too slowly, or Redis was lost: stop the engine
            raise JobCancelled()

    def _deliver(self, events: list[Event]) -> None:
        self.writes += 1
        # Delivered first: the client's task is then scheduled before the marker's, whose send would delay it.
        self._ticket.deliver(self._worker, events)
        if not self.token_sent and any(isinstance(e, Delta) and e.tokens > 0 for e in events):
            self.token_sent = True
            self._marker = asyncio.get_running_loop().create_task(self._write_marker())

    async def _write_marker(self) -> None:
        job = self._ticket.job
        with contextlib.suppress(*REDIS_ERRORS):  # a missing marker only means a reclaim would run it again
            await self._redis.set(Keys.streamed(job.reply_to, job.id), b"1", ex=self._marker_ttl)

    async def _acknowledge(self) -> None:
        """XACK + XDEL of the entry and the job's keys, as the inbox path's terminal write does."""
        assert self._ack is not None
        await asyncio.sleep(0)  # the client's task writes the terminal event before this sends anything
        await self.flush()
        job = self._ticket.job
        stream, entry_id = self._ack
        try:
            async with self._redis.pipeline(transaction=False) as pipe:
                pipe.xack(stream, GROUP, entry_id)
                pipe.xdel(stream, entry_id)
                pipe.delete(Keys.cancel_flag(job.reply_to, job.id), Keys.streamed(job.reply_to, job.id))
                await pipe.execute()
        except REDIS_ERRORS as exc:
            raise InboxUnreachable(str(exc)) from exc
        self.acked = True
