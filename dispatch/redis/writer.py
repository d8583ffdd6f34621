"""One writer per worker process: every job's event batches to the gateways' inboxes, many per round trip.

Urgent batches (a first token, a terminal event) are sent at once, with whatever else is queued. Other
batches wait for the next tick (``window_s``, 1-2 ms): all jobs' deltas produced meanwhile share one
pipeline, with one ``EMIT`` script call per gateway inbox for all of that gateway's batches (the script checks
each job's cancel flag, sets its streamed marker and XADDs its events). Batches queued while a pipeline is in
flight go in the next one. Order per job is kept: a job has at most one batch in flight (see ``Outbox``). This
is what keeps a worker's CPU per streamed token low.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

from redis.exceptions import NoScriptError

from dispatch.redis.connection import REDIS_ERRORS, RedisClient, pipelines_scripts
from dispatch.redis.keys import GROUP, Keys
from dispatch.redis.scripts import EMIT

WRITTEN, GONE, CANCELLED = 1, 0, 2


class Write:
    """One job's batch: ``events`` (msgpack) from ``worker``. ``marker``: set the job's streamed marker first (its
    first token is in the batch). ``ack``: (stream, entry id) to acknowledge and delete after the batch is
    written (its terminal event), with the job's cancel flag and streamed marker."""

    __slots__ = ("ack", "done", "events", "inbox", "job_id", "marker", "worker")

    def __init__(self, inbox: str, job_id: str, worker: str, events: bytes, marker: bool,
                 ack: tuple[str, str] | None, done: asyncio.Future[int]) -> None:
        self.inbox = inbox
        self.job_id = job_id
        self.worker = worker
        self.events = events
        self.marker = marker
        self.ack = ack
        self.done = done


def add_ack(pipe: Any, stream: str, entry_id: str, inbox: str | None, job_id: str) -> None:
    """Queue on ``pipe`` a job's acknowledgement: XACK, then XDEL (entries are never trimmed while pending), and its
    cancel flag and streamed marker deleted (none without ``inbox``: an undecodable entry has no job)."""
    pipe.xack(stream, GROUP, entry_id)
    pipe.xdel(stream, entry_id)
    if inbox is not None:
        pipe.delete(Keys.cancel_flag(inbox, job_id), Keys.streamed(inbox, job_id))


def emit_call(batch: list[Write], ttl: int) -> tuple[list[str], list[Any]]:
    """KEYS and ARGV of one EMIT call for ``batch``, all of one inbox."""
    inbox = batch[0].inbox
    keys = [inbox]
    args: list[Any] = [ttl]
    for w in batch:
        keys += (Keys.cancel_flag(inbox, w.job_id), Keys.streamed(inbox, w.job_id))
        args += (w.job_id, w.worker, w.events, 1 if w.marker else 0)
    return keys, args


class InboxWriter:
    def __init__(self, redis: RedisClient, *, marker_ttl_s: int, window_s: float) -> None:
        self._redis = redis
        self._emit = redis.register_script(EMIT)
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

    async def write(self, inbox: str, job_id: str, worker: str, events: bytes, *, urgent: bool,
                    marker: bool = False, ack: tuple[str, str] | None = None) -> int:
        """Append to ``inbox``: WRITTEN, GONE (no inbox: its gateway is gone) or CANCELLED (written, but the job
        is flagged cancelled). Raises one of REDIS_ERRORS."""
        loop = asyncio.get_running_loop()
        done: asyncio.Future[int] = loop.create_future()
        self._queue.append(Write(inbox, job_id, worker, events, marker, ack, done))
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
        groups: dict[str, list[Write]] = {}
        for w in batch:
            groups.setdefault(w.inbox, []).append(w)
        calls = [emit_call(g, self._ttl) for g in groups.values()]
        self.pipelines += 1
        try:
            results = await self._emit_all(calls)
            for i, (keys, args) in enumerate(calls):
                if isinstance(results[i], NoScriptError):
                    # Redis lost its script cache (a restart, a failover): the Script object loads it again.
                    results[i] = await self._emit(keys=keys, args=args)
        except REDIS_ERRORS as exc:
            _fail(batch, exc)
            return
        ending: list[tuple[Write, tuple[str, str], int]] = []
        for group, outcome in zip(groups.values(), results, strict=True):
            for j, w in enumerate(group):
                if w.done.done():
                    continue
                if isinstance(outcome, Exception):
                    w.done.set_exception(outcome)
                elif w.ack is None:
                    w.done.set_result(int(outcome[j]))
                else:
                    ending.append((w, w.ack, int(outcome[j])))
        if ending:
            await self._acknowledge(ending)

    async def _acknowledge(self, ending: list[tuple[Write, tuple[str, str], int]]) -> None:
        """The jobs whose terminal events Redis has just confirmed: XACK + XDEL, and their keys deleted, in one
        more round trip. Never in the EMITs' own pipeline: there an ack would run even where its EMIT failed,
        and on a Cluster the two go to different masters in either order. If this fails the jobs stay pending
        with their streamed markers: reclaimed, they are failed rather than run again."""
        try:
            async with self._redis.pipeline(transaction=False) as pipe:
                for w, (stream, entry_id), _ in ending:
                    add_ack(pipe, stream, entry_id, w.inbox, w.job_id)
                await pipe.execute()
        except REDIS_ERRORS as exc:
            _fail([w for w, _, _ in ending], exc)
            return
        for w, _, outcome in ending:
            if not w.done.done():
                w.done.set_result(outcome)

    async def _emit_all(self, calls: list[tuple[list[str], list[Any]]]) -> list[Any]:
        """One EMIT per call, each call's reply or error in its place."""
        if not pipelines_scripts(self._redis):
            # Concurrent calls instead, each to its inbox's node.
            return list(await asyncio.gather(*(self._emit(keys=k, args=a) for k, a in calls),
                                             return_exceptions=True))
        async with self._redis.pipeline(transaction=False) as pipe:
            for keys, args in calls:
                # EVALSHA, not the Script object: a pipeline holding a Script sends SCRIPT EXISTS first.
                pipe.evalsha(self._emit.sha, len(keys), *keys, *args)
            return list(await pipe.execute(raise_on_error=False))


def _fail(writes: list[Write], exc: Exception) -> None:
    for w in writes:
        if not w.done.done():
            w.done.set_exception(exc)
