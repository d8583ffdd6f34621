"""One job's events on their way to the owning gateway's inbox, coalescing deltas.

The first token and the terminal event are urgent (the client waits for them); other events wait for the
writer's next tick. Events produced while the job's previous batch is in flight share its next XADD.
The terminal event returns only once it is written, and its write carries the job's acknowledgement
(XACK + XDEL after the XADD, in one round trip): a job is never acknowledged before its terminal event.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable

from backends.events import TERMINAL, Delta, Event
from dispatch.redis.connection import REDIS_ERRORS
from dispatch.redis.wire import encode_events
from dispatch.redis.writer import CANCELLED, GONE, InboxWriter


class StopJob(BaseException):
    """The job must stop without a terminal event. A BaseException so ``run_job``'s adapter-error handler,
    which turns exceptions into a ``Failed`` event, lets it through."""


class GatewayGone(StopJob):
    """The owning gateway's inbox no longer exists: nobody is waiting for the result."""


class JobCancelled(StopJob):
    """The gateway cancelled the job (its client went away)."""


class InboxUnreachable(StopJob):
    """Redis failed while writing; the job cannot report and is left to the visibility timeout."""


class Outbox:
    def __init__(self, writer: InboxWriter, *, inbox: str, job_id: str, worker_id: str,
                 ack: tuple[str, str], on_stop: Callable[[StopJob], None] | None = None) -> None:
        """``on_stop``: called when a background write finds the job must stop (the engine may be busy with no
        event to emit for a while: it is aborted now rather than at its next event)."""
        self._writer = writer
        self._on_stop = on_stop
        self._inbox = inbox
        self._job_id = job_id
        self._worker = worker_id
        self._ack = ack
        self._buf: list[Event] = []
        self._task: asyncio.Task[None] | None = None
        self._error: StopJob | None = None
        self.token_sent = False
        self.acked = False

    async def emit(self, event: Event) -> None:
        if self._error is not None:
            raise self._error
        self._buf.append(event)
        if isinstance(event, TERMINAL):
            await self.flush()
            return
        if self._task is None:
            self._task = asyncio.create_task(self._drain())

    async def flush(self) -> None:
        if self._task is not None:
            await self._task
        if self._error is not None:
            raise self._error
        if self._buf:
            await self._write_pending()

    def abort(self) -> None:
        if self._task is not None:
            self._task.cancel()

    async def _drain(self) -> None:
        try:
            while self._buf:
                await self._write_pending()
        except StopJob as exc:
            self._error = exc
            if self._on_stop is not None:
                self._on_stop(exc)
        finally:
            self._task = None

    async def _write_pending(self) -> None:
        batch, self._buf = self._buf, []
        first_token = not self.token_sent and any(isinstance(e, Delta) and e.tokens > 0 for e in batch)
        ack = self._ack if isinstance(batch[-1], TERMINAL) else None
        urgent = first_token or ack is not None
        try:
            written = await self._writer.write(self._inbox, self._job_id, self._worker, encode_events(batch),
                                               urgent=urgent, marker=first_token, ack=ack)
        except REDIS_ERRORS as exc:
            raise InboxUnreachable(str(exc)) from exc
        self.acked = ack is not None
        if first_token:
            self.token_sent = True
        if written == GONE:
            raise GatewayGone()
        if written == CANCELLED:
            raise JobCancelled()

    async def close(self) -> None:
        self.abort()
        if self._task is not None:
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
