"""One writer per worker process: every job's event batches to the gateways' inboxes, many per round trip.

Urgent batches (a first token, a terminal event) are sent at once, with whatever else is queued. Other
batches wait for the next tick (``window_s``, 1-2 ms): all jobs' deltas produced meanwhile share one
pipeline. Batches queued while a pipeline is in flight go in the next one. Order per job is kept: a job has
at most one batch in flight (see ``Outbox``). This is what keeps a worker's CPU per streamed token low.
"""

from __future__ import annotations

import asyncio
import contextlib

from redis.typing import EncodableT, FieldT

from dispatch.redis.connection import REDIS_ERRORS, RedisClient
from dispatch.redis.keys import GROUP, Keys

Fields = dict[FieldT, EncodableT]
WRITTEN, GONE, CANCELLED = 1, 0, 2


class Write:
    """One job's batch. ``marker``: set the job's streamed marker first (its first token is in the batch).
    ``ack``: (stream, entry id) to acknowledge and delete after the batch is written (its terminal event)."""

    __slots__ = ("ack", "done", "fields", "inbox", "job_id", "marker")

    def __init__(self, inbox: str, job_id: str, fields: Fields, marker: bool,
                 ack: tuple[str, str] | None, done: asyncio.Future[int]) -> None:
        self.inbox = inbox
        self.job_id = job_id
        self.fields = fields
        self.marker = marker
        self.ack = ack
        self.done = done


class InboxWriter:
    def __init__(self, redis: RedisClient, *, marker_ttl_s: int, window_s: float) -> None:
        self._redis = redis
        self._ttl = marker_ttl_s
        self._window = window_s
        self._queue: list[Write] = []
        self._wake = asyncio.Event()
        self._tick: asyncio.TimerHandle | None = None
        self._task: asyncio.Task[None] | None = None
        self.pipelines = 0

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="lockgate-inbox-writer")

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def write(self, inbox: str, job_id: str, fields: Fields, *, urgent: bool, marker: bool = False,
                    ack: tuple[str, str] | None = None) -> int:
        """Append to ``inbox``: WRITTEN, GONE (no inbox: its gateway is gone) or CANCELLED (written, but the job
        is flagged cancelled). Raises one of REDIS_ERRORS."""
        loop = asyncio.get_running_loop()
        done: asyncio.Future[int] = loop.create_future()
        self._queue.append(Write(inbox, job_id, fields, marker, ack, done))
        if urgent or not self._window:
            self._wake.set()
        elif self._tick is None:
            self._tick = loop.call_later(self._window, self._wake.set)
        return await done

    async def _run(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            if self._tick is not None:
                self._tick.cancel()
                self._tick = None
            while self._queue:
                batch, self._queue = self._queue, []
                await self._send(batch)

    async def _send(self, batch: list[Write]) -> None:
        slots: list[int] = []
        self.pipelines += 1
        try:
            async with self._redis.pipeline(transaction=False) as pipe:
                n = 0
                for w in batch:
                    if w.marker:
                        # Before the XADD, on the same connection: a crash in between errs on the safe side
                        # (the job counts as streamed: failed on reclaim rather than replayed).
                        pipe.set(Keys.streamed(w.inbox, w.job_id), b"1", ex=self._ttl)
                        n += 1
                    # Rides along for free: a job cancelled before or while running stops at its next write.
                    pipe.exists(Keys.cancel_flag(w.inbox, w.job_id))
                    # NOMKSTREAM: never recreate a vanished inbox (it would have no TTL and no reader).
                    pipe.xadd(w.inbox, w.fields, nomkstream=True)
                    slots.append(n)
                    n += 2
                    if w.ack is not None:
                        stream, entry_id = w.ack
                        pipe.xack(stream, GROUP, entry_id)
                        pipe.xdel(stream, entry_id)
                        pipe.delete(Keys.cancel_flag(w.inbox, w.job_id), Keys.streamed(w.inbox, w.job_id))
                        n += 3
                results = await pipe.execute(raise_on_error=False)
        except REDIS_ERRORS as exc:
            for w in batch:
                if not w.done.done():
                    w.done.set_exception(exc)
            return
        for w, slot in zip(batch, slots, strict=True):
            if w.done.done():
                continue
            cancelled, added = results[slot], results[slot + 1]
            if isinstance(added, Exception):
                w.done.set_exception(added)
            elif added is None:
                w.done.set_result(GONE)
            else:
                w.done.set_result(CANCELLED if cancelled == 1 else WRITTEN)
