"""The worker side of the Redis dispatch: take jobs, run them, heartbeat, reclaim, dead-letter, cancel.

Per backend, one loop takes new jobs (highest priority band first) up to the backend's concurrency; with
``dispatch.wake = "warm"`` a worker with no job of the backend waits on the idle stack too, so the worker that
became idle last takes the next job (scripts.py, SUBMIT). One
maintenance loop per process heartbeats the jobs it runs (so they are not reclaimed however long they take),
publishes health and load, and reclaims jobs other workers left idle past the visibility timeout. One
pub/sub listener aborts jobs their gateway cancelled. A job is acknowledged (XACK, then XDEL: never trimmed
while pending) only after its terminal event is in the gateway's inbox.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import os
import socket
import time
import uuid
from collections import defaultdict
from collections.abc import Awaitable, Iterable

import msgspec
from redis.exceptions import ResponseError

from backends.events import Failed, Started
from backends.protocol import Backend, Health, HealthState
from backends.worker import run_job
from dispatch.job import Job, decode_job
from dispatch.redis.connection import CLUSTER_UNAVAILABLE, REDIS_ERRORS, RedisClient, connect
from dispatch.redis.failover import MasterWatch
from dispatch.redis.keys import GROUP, Keys
from dispatch.redis.local import LocalBook, LocalOutbox, LocalStart, Withdrawn
from dispatch.redis.outbox import GatewayGone, InboxUnreachable, JobCancelled, Outbox, StopJob
from dispatch.redis.scripts import Scripts, take_when_rung
from dispatch.redis.ticket import RedisTicket, lost_after_tokens
from dispatch.redis.wire import WorkerReport, decode_report, encode_report, text
from dispatch.redis.writer import InboxWriter, add_ack
from gateway.config.redis_target import RedisTarget
from gateway.config.schema import DispatchConfig
from observability.propagation import context_from_traceparent
from observability.telemetry import Telemetry

log = logging.getLogger("lockgate.worker")


def new_worker_id() -> str:
    return f"{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:4]}"


class _Active:
    def __init__(self, stream: str, entry_id: str, job: Job | None) -> None:
        self.stream = stream
        self.entry_id = entry_id
        """Empty for a local start (``dispatch.local``) until its submit confirms it."""
        self.job = job
        self.task: asyncio.Task[None] | None = None
        self.stop_reason = ""
        """Why the task was cancelled: ``cancel`` (gateway asked), ``lost`` (reclaimed elsewhere), ``shutdown``,
        ``withdrawn`` (a local start its submit did not confirm)."""
        self.settling = False
        """Past its terminal event: only the acknowledgement is left, which nothing may interrupt."""


class _LocalStart:
    """The gateway's handle on a job this worker started for it (``dispatch.local``)."""

    def __init__(self, consumer: str, active: _Active, outbox: LocalOutbox) -> None:
        self.consumer = consumer
        self._active = active
        self._outbox = outbox
        self.begun = outbox.begun
        if active.task is not None:
            active.task.add_done_callback(lambda _: outbox.begun.set())

    def confirm(self, stream: str, entry_id: str) -> None:
        self._active.stream, self._active.entry_id = stream, entry_id
        self._outbox.confirm(stream, entry_id)

    def withdraw(self) -> None:
        self._outbox.withdraw()
        task = self._active.task
        if task is not None and not task.done() and not self._active.stop_reason:
            self._active.stop_reason = "withdrawn"
            task.cancel()


class _Lane:
    def __init__(self, backend: Backend, capacity: int, streams: list[str], queue_keys: list[str],
                 bells: list[str]) -> None:
        self.backend = backend
        self.capacity = capacity
        self.streams = streams
        self.queue_keys = queue_keys
        self.idle_key = queue_keys[-2]
        self.pack_key = queue_keys[-1]
        self.pack_dirty = False
        self.pack_task: asyncio.Task[None] | None = None
        """The one task that brings the worker's place in the room set up to date (``dispatch.pack``)."""
        self.bells = bells
        """The worker's own bell first (a BLPOP returns from the first key that has an entry), then the shared."""
        self.active: dict[str, _Active] = {}
        self.room = asyncio.Event()
        self.asked = 0
        """Jobs the take in flight may bring back: a local start (``dispatch.local``) uses only the slots beyond
        them, so a take's reply never finds the lane fuller than its capacity."""

    @property
    def free(self) -> int:
        return self.capacity - len(self.active)


class RedisWorker:
    def __init__(
        self,
        backends: dict[str, Backend],
        config: DispatchConfig,
        *,
        target: RedisTarget,
        telemetry: Telemetry,
        concurrency: dict[str, int] | None = None,
        worker_id: str | None = None,
        redis: RedisClient | None = None,
    ) -> None:
        self.config = config
        self.worker_id = worker_id or new_worker_id()
        self.redis = redis or connect(target)
        self.keys = Keys(config.key_prefix, config.priority_bands)
        self.scripts = Scripts(self.redis)
        self.writer = InboxWriter(self.redis, marker_ttl_s=int(config.job_key_ttl_s),
                                  window_s=config.coalesce_ms / 1000)
        self.book = LocalBook(self.redis, marker_ttl_s=int(config.job_key_ttl_s))
        self.telemetry = telemetry
        self._warm = config.wake == "warm"
        self._pack = config.pack
        self._lanes = {name: _Lane(b, (concurrency or {}).get(name) or b.max_concurrency,
                                   self.keys.job_streams(name), self.keys.queue_keys(name),
                                   [self.keys.worker_bell(name, self.worker_id), self.keys.bell(name)]
                                   if self._warm or self._pack else [self.keys.bell(name)])
                       for name, b in backends.items()}
        # Idle workers refresh their place every block_ms; a dead one's id outlives it by this at most.
        self._idle_ttl_s = max(60, math.ceil(3 * config.block_ms / 1000))
        self._by_job: dict[str, _Active] = {}
        self._tasks: list[asyncio.Task[None]] = []
        self._idle_calls: set[asyncio.Task[None]] = set()
        self._stopping = False
        meter = telemetry.meter
        self._reclaimed = meter.create_counter("lockgate.dispatch.reclaimed", unit="{job}",
                                               description="Jobs taken over after their worker went silent")
        self._dead = meter.create_counter("lockgate.dispatch.dead_lettered", unit="{job}",
                                          description="Jobs moved to the dead-letter stream")
        self._cancelled = meter.create_counter("lockgate.dispatch.cancelled", unit="{job}",
                                               description="Jobs aborted because their gateway cancelled them")
        self._resubscribe = asyncio.Event()
        self._watch = MasterWatch(self.redis, interval_s=config.redis.failover_check_s, telemetry=telemetry,
                                  role="worker", on_change=self._master_changed)

    async def start(self) -> None:
        for lane in self._lanes.values():
            try:
                await self._ensure_groups(lane)
            except REDIS_ERRORS as exc:
                log.warning("worker %s: Redis not reachable yet (%s)", self.worker_id, exc)
        self.writer.start()
        self._tasks = [asyncio.create_task(self._take_loop(name, lane), name=f"lockgate-take-{name}")
                       for name, lane in self._lanes.items()]
        self._tasks.append(asyncio.create_task(self._maintain_loop(), name="lockgate-maintain"))
        self._tasks.append(asyncio.create_task(self._cancel_loop(), name="lockgate-cancel-listener"))
        self._watch.start()
        log.info("worker %s serving %s", self.worker_id, ", ".join(self._lanes))

    async def stop(self, grace_s: float = 0.0) -> None:
        """Take no new job; let running ones finish for ``grace_s``; hand back the rest, then leave."""
        self._stopping = True
        if self._warm or self._pack:
            # Off the idle stack and the room set first: a submit that rang this worker would wait for a BLPOP
            # timeout.
            with contextlib.suppress(*REDIS_ERRORS):
                async with self.redis.pipeline(transaction=False) as pipe:
                    for lane in self._lanes.values():
                        pipe.lrem(lane.idle_key, 0, self.worker_id)
                        pipe.zrem(lane.pack_key, self.worker_id)
                    await pipe.execute()
        for task in self._tasks[:len(self._lanes)]:
            task.cancel()
        running = [a.task for a in self._by_job.values() if a.task is not None]
        if running and grace_s > 0:
            await asyncio.wait(running, timeout=grace_s)
        leftover = [a for a in self._by_job.values() if a.task is not None and not a.task.done()]
        for active in leftover:
            active.stop_reason = "shutdown"
            assert active.task is not None
            active.task.cancel()
        await asyncio.gather(*(a.task for a in leftover if a.task), return_exceptions=True)
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, *self._idle_calls,
                             *(lane.pack_task for lane in self._lanes.values() if lane.pack_task),
                             return_exceptions=True)
        await self._watch.close()
        await self.writer.close()
        await self.book.close()
        with contextlib.suppress(*REDIS_ERRORS):
            async with self.redis.pipeline(transaction=False) as pipe:
                for name, lane in self._lanes.items():
                    pipe.hdel(self.keys.workers(name), self.worker_id)
                    if self._warm:
                        pipe.lrem(lane.idle_key, 0, self.worker_id)  # a registration that was in flight
                    if self._pack:
                        pipe.zrem(lane.pack_key, self.worker_id)
                await pipe.execute()
        await self.redis.aclose()

    # -- taking jobs -------------------------------------------------------------------------------------

    async def _take_loop(self, name: str, lane: _Lane) -> None:
        backoff = 0.05
        while not self._stopping:
            try:
                if lane.free <= 0:
                    lane.room.clear()
                    await lane.room.wait()
                    continue
                lane.asked = self._want(lane)
                take_args: list[str | int] = [GROUP, self.worker_id, lane.asked, int(self.config.stream_ttl_s)]
                try:
                    rows = await self.scripts.take(keys=lane.queue_keys, args=take_args)
                    if not rows:
                        idle: list[str | int] | None = None
                        if self._warm and not lane.active:
                            idle = [self.worker_id, self._idle_ttl_s, "keep"]
                        rows = await take_when_rung(self.redis, self.scripts, lane.queue_keys, lane.bells,
                                                    self.config.block_ms / 1000, take_args, idle)
                finally:
                    lane.asked = 0
                taken = [(s, i, _pairs(f)) for s, i, f in rows]
                for stream, entry_id, fields in taken:
                    self._spawn(name, lane, text(stream), text(entry_id), fields.get(b"job", b""), 1)
                backoff = 0.05
            except asyncio.CancelledError:
                raise
            except ResponseError as exc:
                if isinstance(exc, CLUSTER_UNAVAILABLE):
                    log.warning("backend %s: Redis Cluster unavailable (%s); retrying", name, exc)
                    await asyncio.sleep(backoff)
                    backoff = min(backoff * 2, 1.0)
                elif str(exc).startswith("UNBLOCKED"):
                    # The blocked read's stream went away under it: its Cluster slot moved (the next read
                    # follows MOVED) or the server changed role. Read again.
                    log.info("backend %s: blocking read interrupted (%s); reading again", name, exc)
                elif "NOGROUP" in str(exc):
                    log.info("backend %s: consumer group missing (Redis restarted?); recreating", name)
                    await self._guard(self._ensure_groups(lane))
                else:
                    log.error("backend %s: %s", name, exc)
                    await asyncio.sleep(backoff)
            except REDIS_ERRORS as exc:
                log.warning("backend %s: Redis unavailable (%s); retrying", name, exc)
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 1.0)

    async def _ensure_groups(self, lane: _Lane) -> None:
        for stream in lane.streams:
            try:
                # From id 0, so jobs enqueued before the group existed (after a Redis restart) are served.
                await self.redis.xgroup_create(stream, GROUP, id="0", mkstream=True)
            except ResponseError as exc:
                if "BUSYGROUP" not in str(exc):
                    raise
            await self.redis.expire(stream, int(self.config.stream_ttl_s))

    def _spawn(self, name: str, lane: _Lane, stream: str, entry_id: str, payload: bytes, deliveries: int) -> None:
        try:
            job: Job | None = decode_job(payload)
        except msgspec.DecodeError:
            job = None
        active = _Active(stream, entry_id, job)
        self._start(name, lane, job.id if job is not None else f"undecodable:{entry_id}", active, payload,
                    deliveries, None)

    def _start(self, name: str, lane: _Lane, key: str, active: _Active, payload: bytes, deliveries: int,
               outbox: LocalOutbox | None) -> None:
        lane.active[key] = active
        self._by_job[key] = active
        active.task = asyncio.create_task(self._run(name, lane, active, payload, deliveries, outbox))
        active.task.add_done_callback(lambda _: self._forget(lane, key, active))
        # One turn later: the run's first step starts the adapter's task, whose engine request then goes out
        # before the room update's send (0.2-0.6 ms of redis-py on a small machine).
        asyncio.get_running_loop().call_soon(self._pack_changed, lane)

    def start_local(self, job: Job, ticket: RedisTicket) -> LocalStart | None:
        """``dispatch.local``: start a job of this process's own gateway now, if its backend has a free slot here;
        the gateway settles it with its submit's answer (dispatch/redis/local.py)."""
        lane = self._lanes.get(job.backend)
        if lane is None or self._stopping or lane.free - lane.asked <= 0 or job.id in self._by_job:
            return None
        outbox = LocalOutbox(self.book, ticket, worker_id=self.worker_id)
        active = _Active("", "", job)
        self._start(job.backend, lane, job.id, active, b"", 1, outbox)
        return _LocalStart(self.worker_id, active, outbox)

    def _forget(self, lane: _Lane, key: str, active: _Active) -> None:
        if lane.active.get(key) is active:
            del lane.active[key]
            lane.room.set()
            self._pack_changed(lane)
        if self._by_job.get(key) is active:
            del self._by_job[key]

    # -- packing (dispatch.pack) ---------------------------------------------------------------------------

    def _want(self, lane: _Lane) -> int:
        """How many jobs one TAKE asks for. Packing: up to ``pack`` held, then one at a time, so a backlog
        spreads over the workers that wake for it instead of going whole to the first."""
        if not self._pack:
            return lane.free
        return min(lane.free, max(self._pack - len(lane.active), 1))

    def _room_left(self, lane: _Lane) -> int:
        """Jobs this worker still takes before the next worker gets any: never past its capacity, where its
        take loop no longer listens for its bell."""
        return min(self._pack, lane.capacity) - len(lane.active)

    def _pack_changed(self, lane: _Lane) -> None:
        if not self._pack or self._stopping:
            return
        lane.pack_dirty = True
        if lane.pack_task is None:
            lane.pack_task = asyncio.get_running_loop().create_task(self._pack_sync(lane))

    async def _pack_sync(self, lane: _Lane) -> None:
        """The worker's place in the room set: its room left (``pack`` minus the jobs it holds) while it holds
        at least one job and has room, else out. One task per lane writes, so updates cannot overtake each
        other; changes made while one is in flight go in the next, with the count of that moment."""
        try:
            while lane.pack_dirty and not self._stopping:
                lane.pack_dirty = False
                left = self._room_left(lane)
                async with self.redis.pipeline(transaction=False) as pipe:
                    if lane.active and left > 0:
                        pipe.zadd(lane.pack_key, {self.worker_id: left})
                        pipe.expire(lane.pack_key, self._idle_ttl_s)
                    else:
                        pipe.zrem(lane.pack_key, self.worker_id)
                    await pipe.execute()
        except REDIS_ERRORS as exc:
            # Jobs still flow (to other workers, or by the shared bell); the next change or heartbeat retries.
            log.warning("worker %s: room update failed (%s)", self.worker_id, exc)
        finally:
            lane.pack_task = None

    # -- running one job ---------------------------------------------------------------------------------

    async def _run(self, name: str, lane: _Lane, active: _Active, payload: bytes, deliveries: int,
                   local: LocalOutbox | None) -> None:
        job = active.job
        if job is None:
            log.error("backend %s: undecodable job entry %s; dead-lettering it", name, active.entry_id)
            await self._guard(self._dead_letter(name, active, payload, deliveries, "undecodable"))
            await self._guard(self._ack(active))
            return
        outbox: Outbox | LocalOutbox = local or Outbox(
            self.writer, inbox=job.reply_to, job_id=job.id, worker_id=self.worker_id,
            ack=(active.stream, active.entry_id), on_stop=lambda exc: self._stop(active, exc))
        try:
            await self._serve(name, lane, active, job, payload, deliveries, outbox)
        except Withdrawn:
            return
        except JobCancelled:
            self._cancelled.add(1, {"lockgate.backend": name})
        except GatewayGone:
            log.info("job %s: its gateway is gone; dropping it", job.id)
        except InboxUnreachable as exc:
            # Cannot report, so cannot ack honestly: leave it pending for the visibility timeout.
            log.warning("job %s: Redis failed while reporting (%s); left for redelivery", job.id, exc)
            return
        except asyncio.CancelledError:
            if active.stop_reason == "cancel":
                self._cancelled.add(1, {"lockgate.backend": name})
            elif active.stop_reason == "unreachable":
                log.warning("job %s: Redis failed while reporting; left for redelivery", job.id)
                return
            elif active.stop_reason == "withdrawn":
                return
            elif active.stop_reason == "shutdown":
                await self._guard(self._hand_back(active, outbox))
                raise
            else:  # lost to another worker, or the whole worker is going down hard
                raise
        finally:
            active.settling = True
            if self._warm and not self._stopping and all(a.settling for a in lane.active.values()):
                self._became_idle(lane)
            await outbox.close()
        if local is not None and not await local.settled():
            return  # withdrawn: there is no entry of this run to acknowledge
        if not outbox.acked:  # else the terminal event's write carried the acknowledgement
            await self._guard(self._ack(active))

    async def _serve(self, name: str, lane: _Lane, active: _Active, job: Job, payload: bytes, deliveries: int,
                     outbox: Outbox | LocalOutbox) -> None:
        if deliveries > 1:
            self._reclaimed.add(1, {"lockgate.backend": name})
            # In the request's trace: this job was taken over from a silent worker, and what became of it.
            with self.telemetry.tracer.start_as_current_span(
                    f"reclaim {name}", context=context_from_traceparent(job.traceparent),
                    attributes={"lockgate.backend": name, "lockgate.deliveries": deliveries,
                                "messaging.destination.name": name}) as span:
                verdict = await self._reclaim_verdict(name, lane, active, job, payload, deliveries, outbox)
                span.set_attribute("lockgate.reclaim.outcome", verdict)
            if verdict != "rerun":
                return
        # A job cancelled while it waited stops at its first write (Started), before the engine does much.
        await run_job(lane.backend, job, outbox.emit, self.telemetry, self.worker_id)

    async def _reclaim_verdict(self, name: str, lane: _Lane, active: _Active, job: Job, payload: bytes,
                               deliveries: int, outbox: Outbox | LocalOutbox) -> str:
        """Decide what a redelivered job gets: dead-lettered, failed (tokens already out), or run again."""
        if deliveries > self.config.max_deliveries:
            log.warning("job %s delivered %d times; dead-lettering it", job.id, deliveries)
            await self._dead_letter(name, active, payload, deliveries, "max_deliveries")
            await self._verdict(outbox, lane, Failed(
                type="server_error", code="dead_lettered", status=500,
                message=f"The job failed on {deliveries - 1} workers in a row and was set aside."))
            return "dead_lettered"
        if await self.redis.exists(Keys.streamed(job.reply_to, job.id)):
            # Tokens already reached the gateway from the worker that died: never replay them.
            await self._verdict(outbox, lane, lost_after_tokens())
            return "failed_after_tokens"
        return "rerun"

    def _became_idle(self, lane: _Lane) -> None:
        """To the top of the idle stack, now: the job's last event is on its way, and the client's next request
        may follow it within a millisecond, while the worker still waits for its writes and acknowledgement
        (and its take loop is blocked since it took the job)."""
        task = asyncio.get_running_loop().create_task(self._guard(
            self.scripts.idle(keys=[lane.idle_key], args=[self.worker_id, self._idle_ttl_s, "top"])))
        self._idle_calls.add(task)  # a strong reference until it is done
        task.add_done_callback(self._idle_calls.discard)

    def _stop(self, active: _Active, exc: StopJob) -> None:
        if active.task is None or active.task.done() or active.settling or active.stop_reason:
            return
        # Cancelled or orphaned: acknowledged once aborted. Unreachable: left pending for redelivery.
        active.stop_reason = "unreachable" if isinstance(exc, InboxUnreachable) else "cancel"
        active.task.cancel()

    async def _verdict(self, outbox: Outbox | LocalOutbox, lane: _Lane, failure: Failed) -> None:
        # Started first: the gateway accepts events only from the worker that announced itself last.
        await outbox.emit(Started(backend=lane.backend.name, engine=lane.backend.engine, worker=self.worker_id,
                                  t_ns=time.time_ns()))
        await outbox.emit(failure)

    async def _ack(self, active: _Active) -> None:
        job = active.job
        async with self.redis.pipeline(transaction=False) as pipe:
            add_ack(pipe, active.stream, active.entry_id, job.reply_to if job else None, job.id if job else "")
            await pipe.execute()

    async def _hand_back(self, active: _Active, outbox: Outbox | LocalOutbox) -> None:
        """On shutdown: a job with tokens out gets one error; any other becomes claimable at once."""
        if outbox.token_sent:
            with contextlib.suppress(StopJob):
                await outbox.flush()
                await outbox.emit(Failed(type="server_error", code="worker_shutdown", status=503,
                                         message="The worker serving this stream shut down."))
            if not outbox.acked:
                await self._ack(active)
            return
        if not active.entry_id:  # a local start not confirmed yet: its gateway, closing too, withdraws it
            return
        # Idle set past the visibility timeout: the next reclaim by any live worker takes it.
        idle_ms = int(self.config.visibility_timeout_s * 1000) + 1
        await self.redis.xclaim(active.stream, GROUP, self.worker_id, 0, [active.entry_id], idle=idle_ms,
                                justid=True)

    async def _dead_letter(self, name: str, active: _Active, payload: bytes, deliveries: int, reason: str) -> None:
        dead = self.keys.dead(name)
        async with self.redis.pipeline(transaction=False) as pipe:
            pipe.xadd(dead, {"job": payload, "reason": reason, "deliveries": deliveries,
                             "entry": active.entry_id, "worker": self.worker_id},
                      maxlen=self.config.dead_letter_maxlen, approximate=True)
            pipe.expire(dead, int(self.config.stream_ttl_s))
            await pipe.execute()
        self._dead.add(1, {"lockgate.backend": name, "lockgate.reason": reason})

    # -- maintenance: heartbeat, health, reclaim ---------------------------------------------------------

    async def _maintain_loop(self) -> None:
        while True:
            try:
                await self._maintain()
            except asyncio.CancelledError:
                raise
            except ResponseError as exc:
                if isinstance(exc, CLUSTER_UNAVAILABLE):
                    log.warning("maintenance: Redis Cluster unavailable (%s)", exc)
                elif "NOGROUP" in str(exc):
                    for lane in self._lanes.values():
                        await self._guard(self._ensure_groups(lane))
                else:
                    log.error("maintenance: %s", exc)
            except REDIS_ERRORS as exc:
                log.warning("maintenance: Redis unavailable (%s)", exc)
            await asyncio.sleep(self.config.heartbeat_interval_s)

    async def _maintain(self) -> None:
        interval = self.config.heartbeat_interval_s
        for name, lane in self._lanes.items():
            await self._heartbeat(lane)
            try:
                # asyncio.timeout, not wait_for: on 3.11 wait_for can swallow the cancellation that stops this loop.
                async with asyncio.timeout(interval):
                    health = await lane.backend.health()
                async with asyncio.timeout(interval):
                    load = await lane.backend.load()
            except Exception as exc:  # a failing probe means a down backend, not a dead worker
                health, load = Health(HealthState.DOWN, f"health check failed: {type(exc).__name__}"), None
            now_ms = int(time.time() * 1000)
            report = WorkerReport(worker=self.worker_id, health=health, load=load, running=len(lane.active),
                                  capacity=lane.capacity, expires_ms=now_ms + int(interval * 2500))
            workers = self.keys.workers(name)
            async with self.redis.pipeline(transaction=False) as pipe:
                pipe.hset(workers, self.worker_id, encode_report(report))
                pipe.pexpire(workers, int(interval * 3000))
                for stream in lane.streams:
                    pipe.expire(stream, int(self.config.stream_ttl_s))
                pipe.hgetall(workers)
                *_, reports = await pipe.execute()
            stale = [k for k, v in reports.items() if _expired(v, now_ms)]
            if stale:
                async with self.redis.pipeline(transaction=False) as pipe:
                    pipe.hdel(workers, *stale)
                    pipe.zrem(lane.pack_key, *stale)  # a dead worker's room (dispatch.pack) rings no more bells
                    await pipe.execute()
            self._pack_changed(lane)  # its own place again, and the set's TTL refreshed
            if not self._stopping:
                await self._reclaim(name, lane)

    async def _heartbeat(self, lane: _Lane) -> None:
        by_stream: dict[str, list[str]] = defaultdict(list)
        for active in lane.active.values():
            if active.entry_id:  # a local start has none until its submit confirms it
                by_stream[active.stream].append(active.entry_id)
        # Cancellation normally arrives by pub/sub at once; this catches any message lost while the
        # subscriber reconnected, within one heartbeat.
        jobs = [a.job for a in lane.active.values() if a.job is not None]
        if jobs:
            async with self.redis.pipeline(transaction=False) as pipe:
                for job in jobs:
                    pipe.exists(Keys.cancel_flag(job.reply_to, job.id))
                flags = await pipe.execute()
            for job, flagged in zip(jobs, flags, strict=True):
                if flagged:
                    self.cancel(job.id)
        for stream, ids in by_stream.items():
            lost = await self.scripts.heartbeat(keys=[stream], args=[GROUP, self.worker_id, *ids])
            for entry_id in map(text, lost):
                for active in list(lane.active.values()):
                    if active.entry_id == entry_id and active.task is not None and not active.settling:
                        log.warning("job %s was claimed by another worker; stopping it here", entry_id)
                        active.stop_reason = "lost"
                        active.task.cancel()

    async def _reclaim(self, name: str, lane: _Lane) -> None:
        min_idle = int(self.config.visibility_timeout_s * 1000)
        for stream in lane.streams:
            if lane.free <= 0:
                return
            rows = await self.scripts.reclaim(keys=[stream], args=[GROUP, self.worker_id, min_idle, lane.free])
            for entry_id, fields, deliveries in rows:
                log.info("reclaimed job entry %s from %s (delivery %d)", text(entry_id), stream, deliveries)
                self._spawn(name, lane, stream, text(entry_id), _pairs(fields).get(b"job", b""), int(deliveries))

    # -- cancellation ------------------------------------------------------------------------------------

    async def _cancel_loop(self) -> None:
        channels = [self.keys.cancel_channel(name) for name in self._lanes]
        while True:
            pubsub = self.redis.pubsub()
            self._resubscribe.clear()
            try:
                await pubsub.subscribe(*channels)
                while not self._resubscribe.is_set():
                    message = await pubsub.get_message(ignore_subscribe_messages=True, timeout=1.0)
                    if message is not None and message["type"] == "message":
                        self.cancel(text(message["data"]))
            except asyncio.CancelledError:
                raise
            except REDIS_ERRORS as exc:
                log.warning("cancel listener: Redis unavailable (%s)", exc)
                await asyncio.sleep(0.5)
            finally:
                with contextlib.suppress(*REDIS_ERRORS):
                    await pubsub.aclose()  # type: ignore[no-untyped-call]

    def _master_changed(self, why: str) -> None:
        """A Sentinel failover: the gateways fail every request in flight (their events may be lost with the old
        master), so the jobs running for them are aborted and acknowledged on the new master; the cancel
        subscription, still on the old master, is renewed."""
        for job_id in list(self._by_job):
            self.cancel(job_id)
        self._resubscribe.set()

    def cancel(self, job_id: str) -> bool:
        """Abort a job this worker runs (its task is cancelled: the engine request with it)."""
        active = self._by_job.get(job_id)
        if active is None or active.task is None or active.task.done() or active.settling:
            return False
        active.stop_reason = "cancel"
        active.task.cancel()
        return True

    @staticmethod
    async def _guard(work: Awaitable[object]) -> None:
        """Await a best-effort Redis step; log instead of raising (the caller has nothing better to do)."""
        try:
            await work
        except REDIS_ERRORS as exc:
            log.warning("Redis step failed: %s", exc)


def _pairs(flat: Iterable[bytes] | dict[bytes, bytes]) -> dict[bytes, bytes]:
    if isinstance(flat, dict):
        return flat
    items = list(flat)
    return dict(zip(items[::2], items[1::2], strict=True))


def _expired(raw: bytes, now_ms: int) -> bool:
    try:
        return decode_report(raw).expires_ms <= now_ms
    except msgspec.DecodeError:
        return True
