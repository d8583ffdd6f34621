"""In-process dispatch: a priority queue and worker tasks per backend, inside the gateway's event loop.

The default of ``lockgate serve``. Jobs never leave the process, so a crash loses them with their clients:
there is nothing to redeliver to. The Redis dispatch is the one that survives a dead worker.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
from collections.abc import AsyncIterator

from backends.events import TERMINAL, Event, Failed
from backends.protocol import Backend
from backends.worker import run_job
from dispatch.contract import AdmissionRefused, BackendStatus, DispatchUnavailable
from dispatch.fair import FairTags
from dispatch.job import Job
from observability.telemetry import Telemetry

log = logging.getLogger("lockgate.dispatch")


class EmbeddedTicket:
    def __init__(self, job: Job, max_buffered: int = 0) -> None:
        self.job = job
        self.wake = "inprocess"
        # Bounded: a client that reads slowly holds back its job (and the engine) instead of memory growing.
        self._events: asyncio.Queue[Event] = asyncio.Queue(max_buffered)
        self.cancelled = False
        self.task: asyncio.Task[Event] | None = None
        self.done = False

    async def push(self, event: Event) -> None:
        if not self.cancelled:
            await self._events.put(event)

    async def events(self) -> AsyncIterator[Event]:
        while True:
            event = await self._events.get()
            yield event
            if isinstance(event, TERMINAL):
                return

    def ready(self) -> list[Event]:
        out: list[Event] = []
        while not self._events.empty():
            event = self._events.get_nowait()
            out.append(event)
            if isinstance(event, TERMINAL):
                break
        return out

    async def cancel(self) -> None:
        self.cancelled = True
        if self.task is not None and not self.task.done():
            self.task.cancel()


class _Lane:
    """One backend's queue and workers."""

    def __init__(self, backend: Backend, concurrency: int) -> None:
        self.backend = backend
        self.concurrency = concurrency
        # (-priority, fair tag, arrival, ticket): higher bands first, then tenants in turn (dispatch/fair.py).
        self.queue: asyncio.PriorityQueue[tuple[int, int, int, EmbeddedTicket]] = asyncio.PriorityQueue()
        self.fair = FairTags()
        self.jobs: set[asyncio.Task[Event]] = set()
        self.workers: list[asyncio.Task[None]] = []


class EmbeddedDispatcher:
    def __init__(
        self,
        backends: dict[str, Backend],
        *,
        telemetry: Telemetry,
        max_queue_depth: int,
        retry_after_s: float,
        concurrency: dict[str, int] | None = None,
        max_buffered_events: int = 0,
    ) -> None:
        """``max_buffered_events``: events held per job for a slow consumer (0 = unbounded)."""
        self._lanes = {name: _Lane(b, (concurrency or {}).get(name) or b.max_concurrency)
                       for name, b in backends.items()}
        self._telemetry = telemetry
        self._max_depth = max_queue_depth
        self._retry_after = retry_after_s
        self._seq = itertools.count()
        self._accepting = False
        self._max_buffered = max_buffered_events

    @property
    def backends(self) -> dict[str, Backend]:
        return {name: lane.backend for name, lane in self._lanes.items()}

    async def start(self) -> None:
        for name, lane in self._lanes.items():
            lane.workers = [asyncio.create_task(self._work(lane), name=f"lockgate-worker-{name}-{i}")
                            for i in range(lane.concurrency)]
        self._accepting = True

    async def close(self, grace_s: float = 0.0) -> None:
        """Stop accepting; give running jobs ``grace_s`` to finish; fail what is left with a 503."""
        self._accepting = False
        for lane in self._lanes.values():
            while not lane.queue.empty():
                *_, ticket = lane.queue.get_nowait()
                await ticket.push(Failed(type="server_error", status=503, retryable=False,
                                         message="the gateway is shutting down"))
        running = [t for lane in self._lanes.values() for t in lane.jobs]
        if running and grace_s > 0:
            await asyncio.wait(running, timeout=grace_s)
        workers = [w for lane in self._lanes.values() for w in lane.workers]
        for w in workers:
            w.cancel()
        await asyncio.gather(*workers, return_exceptions=True)

    async def submit(self, job: Job) -> EmbeddedTicket:
        if not self._accepting:
            raise DispatchUnavailable("dispatch is not accepting jobs")
        lane = self._lanes.get(job.backend)
        if lane is None:
            raise DispatchUnavailable(f"no workers for backend {job.backend!r}")
        depth = lane.queue.qsize()
        # Check and enqueue happen without an await in between, so the check is atomic on this loop.
        if depth >= self._max_depth:
            raise AdmissionRefused(job.backend, depth, self._retry_after)
        ticket = EmbeddedTicket(job, self._max_buffered)
        tag = lane.fair.tag(job.priority, job.tenant)
        lane.queue.put_nowait((-job.priority, tag, next(self._seq), ticket))
        return ticket

    async def ping(self) -> bool:
        return self._accepting

    async def status(self) -> dict[str, BackendStatus]:
        out = {}
        for name, lane in self._lanes.items():
            out[name] = BackendStatus(health=await lane.backend.health(), load=await lane.backend.load(),
                                      queued=lane.queue.qsize(), running=len(lane.jobs))
        return out

    def queued(self, backend: str) -> int:
        return self._lanes[backend].queue.qsize()

    def running(self, backend: str) -> int:
        return len(self._lanes[backend].jobs)

    async def _work(self, lane: _Lane) -> None:
        while True:
            priority, tag, _, ticket = await lane.queue.get()
            lane.fair.served(-priority, tag)
            if ticket.cancelled:
                continue
            ticket.task = asyncio.create_task(run_job(lane.backend, ticket.job, ticket.push, self._telemetry))
            lane.jobs.add(ticket.task)
            try:
                # wait() rather than await: a cancelled job must not look like a cancelled worker.
                await asyncio.wait({ticket.task})
            except asyncio.CancelledError:
                ticket.task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await ticket.task
                raise
            finally:
                lane.jobs.discard(ticket.task)
            if ticket.task.cancelled():
                log.debug("job %s cancelled", ticket.job.id)
            elif ticket.task.exception() is not None:
                log.error("job %s crashed the worker runtime", ticket.job.id, exc_info=ticket.task.exception())
                await ticket.push(Failed(type="server_error", status=500, message="internal worker error"))
