"""A job seen from the gateway in Redis mode: events arrive from the inbox reader, tagged with the worker."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable

from backends.events import TERMINAL, Event, Failed, Started
from backends.worker import is_token
from dispatch.job import Job


def lost_after_tokens() -> Failed:
    return Failed(type="server_error", code="worker_lost", status=502,
                  message="The worker serving this stream was lost after it had sent tokens; "
                          "the request is not replayed.")


class RedisTicket:
    """Accepts events only from the worker that announced itself last with ``Started``.

    A job may run more than once (a reclaim after a worker died). A new run is welcome while the client has
    no token; once it has one, a second worker's ``Started`` ends the stream with one error instead: no token
    is ever delivered twice. Late events of a worker that lost the job are dropped.
    """

    def __init__(self, job: Job, on_cancel: Callable[[RedisTicket], asyncio.Task[None]],
                 on_done: Callable[[RedisTicket], None], max_buffered: int = 0) -> None:
        """``on_cancel`` starts the cancellation signal to the workers as a task of its own: it must reach Redis
        even when the request's task is itself being cancelled (a client that went away)."""
        """``max_buffered``: events held for a slow client (0 = unbounded). The worker cannot be held back
        through Redis, so past it the request ends with one error and the job is cancelled: memory stays
        bounded whatever the client does."""
        self.job = job
        self.wake = "shared"
        self._max_buffered = max_buffered
        self._on_cancel = on_cancel
        self._on_done = on_done
        self._queue: asyncio.Queue[Event] = asyncio.Queue()
        self.worker: str | None = None
        self.tokens = 0
        self.done = False

    def deliver(self, worker: str, events: list[Event]) -> None:
        if self.done or not events:
            return
        if worker != self.worker:
            if not isinstance(events[0], Started):
                return
            if self.tokens:
                self.fail(lost_after_tokens())
                # The new run is pointless: tell its worker to stop.
                self._on_cancel(self)
                return
            self.worker = worker
        if self._max_buffered and self._queue.qsize() + len(events) > self._max_buffered:
            self.fail(Failed(type="server_error", code="slow_consumer", status=503,
                             message="The client read the stream too slowly; the request was stopped."))
            self._on_cancel(self)
            return
        for event in events:
            if is_token(event):
                self.tokens += 1
            self._queue.put_nowait(event)
            if isinstance(event, TERMINAL):
                self._finish()
                return

    def fail(self, failure: Failed) -> None:
        """End the client's stream with ``failure`` (Redis lost, gateway closing...)."""
        if not self.done:
            self._queue.put_nowait(failure)
            self._finish()

    def _finish(self) -> None:
        self.done = True
        self._on_done(self)

    async def events(self) -> AsyncIterator[Event]:
        while True:
            event = await self._queue.get()
            yield event
            if isinstance(event, TERMINAL):
                return

    def ready(self) -> list[Event]:
        out: list[Event] = []
        while not self._queue.empty():
            event = self._queue.get_nowait()
            out.append(event)
            if isinstance(event, TERMINAL):
                break
        return out

    async def cancel(self) -> None:
        if self.done:
            return
        self._finish()
        # Shielded: if the caller is cancelled meanwhile, the signal still goes out.
        await asyncio.shield(self._on_cancel(self))
