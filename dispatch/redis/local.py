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
from typing import Protocol

from backends.events import TERMINAL, Delta, Event
from dispatch.job import Job
from dispatch.redis.connection import REDIS_ERRORS, RedisClient
from dispatch.redis.keys import Keys
from dispatch.redis.outbox import InboxUnreachable, JobCancelled, StopJob
from dispatch.redis.ticket import RedisTicket
from dispatch.redis.writer import add_ack


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


class LocalBook:
    """One per worker process: its local jobs' Redis writes (streamed markers, acknowledgements), all that are queued
    in one pipeline. At a closed loop's wave dozens of a process's jobs start and end within a few ms, and a round
    trip each would spend the event loop that relays their streams on client calls (0.2-0.7 ms of redis-py each
    on a small machine). Writes queued while a pipeline is in flight go in the next."""

    def __init__(self, redis: RedisClient, *, marker_ttl_s: int) -> None:
        self._redis = redis
        self._ttl = marker_ttl_s
        self._queue: list[tuple[Job, tuple[str, str] | None, asyncio.Future[None] | None]] = []
        """Per write: the job, the entry to acknowledge (None: set the streamed marker), who waits for it."""
        self._task: asyncio.Task[None] | None = None
        self.pipelines = 0

    def mark(self, job: Job) -> None:
        """The job's streamed marker, best effort: without it a reclaim would only run the job again for nobody
        (its client is in this process)."""
        self._push(job, None, None)

    async def ack(self, job: Job, stream: str, entry_id: str) -> None:
        """XACK + XDEL of the job's entry and its keys deleted; raises one of REDIS_ERRORS."""
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._push(job, (stream, entry_id), done)
        await done

    async def close(self) -> None:
        if self._task is not None:
            await asyncio.gather(self._task, return_exceptions=True)

    def _push(self, job: Job, ack: tuple[str, str] | None, done: asyncio.Future[None] | None) -> None:
        self._queue.append((job, ack, done))
        if self._task is None:
            # A task of its own, scheduled behind the ones already ready: the client's write of the event that
            # caused this comes first.
            self._task = asyncio.get_running_loop().create_task(self._run())

    async def _run(self) -> None:
        try:
            while self._queue:
                batch, self._queue = self._queue, []
                await self._send(batch)
        finally:
            self._task = None

    async def _send(self, batch: list[tuple[Job, tuple[str, str] | None, asyncio.Future[None] | None]]) -> None:
        self.pipelines += 1
        try:
            async with self._redis.pipeline(transaction=False) as pipe:
                for job, ack, _ in batch:
                    if ack is None:
                        pipe.set(Keys.streamed(job.reply_to, job.id), b"1", ex=self._ttl)
                    else:
                        add_ack(pipe, *ack, job.reply_to, job.id)
                await pipe.execute()
        except REDIS_ERRORS as exc:
            for _, _, done in batch:
                if done is not None and not done.done():
                    done.set_exception(exc)
            return
        for _, _, done in batch:
            if done is not None and not done.done():
                done.set_result(None)


class LocalOutbox:
    """A local job's events: held until the submit's answer, then handed to the ticket as they come.

    Same interface as ``Outbox`` (the worker's run path does not know which it has). Redis gets the streamed
    marker with the first token (written beside the delivery: the client is in this process, so a crash loses
    nobody's tokens) and the acknowledgement after the terminal event."""

    def __init__(self, book: LocalBook, ticket: RedisTicket, *, worker_id: str) -> None:
        self._book = book
        self._ticket = ticket
        self._worker = worker_id
        self._held: list[Event] = []
        self._settled = asyncio.Event()
        self.begun = asyncio.Event()
        self._withdrawn = False
        self._ack: tuple[str, str] | None = None
        self.token_sent = False
        self.acked = False

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
        """Nothing to wait for: delivered events are with the ticket, the marker is the book's."""

    def abort(self) -> None:
        pass

    async def close(self) -> None:
        pass

    def _check(self) -> None:
        if self._withdrawn:
            raise Withdrawn()
        if self._ticket.done:  # the client went away, read too slowly, or Redis was lost: stop the engine
            raise JobCancelled()

    def _deliver(self, events: list[Event]) -> None:
        # Delivered first: the client's task is then scheduled before the book's, whose send would delay it.
        self._ticket.deliver(self._worker, events)
        if not self.token_sent and any(isinstance(e, Delta) and e.tokens > 0 for e in events):
            self.token_sent = True
            self._book.mark(self._ticket.job)

    async def _acknowledge(self) -> None:
        """XACK + XDEL of the entry and the job's keys, as the inbox path's terminal write does (after the
        marker: the book sends in order)."""
        assert self._ack is not None
        try:
            await self._book.ack(self._ticket.job, *self._ack)
        except REDIS_ERRORS as exc:
            raise InboxUnreachable(str(exc)) from exc
        self.acked = True
