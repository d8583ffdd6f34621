"""The gateway side of the Redis dispatch: submit (atomic admission + enqueue), cancel, status."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid

import msgspec

from backends.protocol import Health, HealthState, Load
from dispatch.contract import AdmissionRefused, BackendStatus, DispatchUnavailable
from dispatch.job import Job, encode_job
from dispatch.redis.connection import REDIS_ERRORS, RedisClient, connect
from dispatch.redis.failover import MasterWatch
from dispatch.redis.inbox import Inbox
from dispatch.redis.keys import GROUP, Keys
from dispatch.redis.local import LocalStart, LocalWorkers
from dispatch.redis.scripts import Scripts
from dispatch.redis.submits import SubmitBatcher
from dispatch.redis.ticket import RedisTicket
from dispatch.redis.wire import WorkerReport, decode_report, text
from gateway.config.redis_target import RedisTarget
from gateway.config.schema import DispatchConfig
from observability.semconv import DISPATCH_WAKE as WAKE
from observability.telemetry import Telemetry

log = logging.getLogger("lockgate.dispatch.redis")


_WAKES = ("shared", "warm", "packed", "local")
"""The submit script's third reply: which bell it rang, or none: taken by this process's own worker (scripts.py,
SUBMIT)."""
LOCAL = 3
LOCAL_HEAD_START_S = 0.002
"""Longest a submit waits for its local run to send its engine request (dispatch.local)."""


class RedisDispatcher:
    """Implements ``dispatch.contract.Dispatcher`` over Redis Streams; workers run in other processes."""

    def __init__(
        self,
        config: DispatchConfig,
        *,
        target: RedisTarget,
        backends: list[str],
        telemetry: Telemetry,
        max_queue_depth: int,
        retry_after_s: float,
        gateway_id: str | None = None,
        redis: RedisClient | None = None,
        max_buffered_events: int = 0,
        local: LocalWorkers | None = None,
    ) -> None:
        """``local``: the workers of this process (``lockgate serve``), which start a job at once when they have
        room and ``dispatch.local`` is on (dispatch/redis/local.py)."""
        self.config = config
        self._local = local if config.local else None
        self.gateway_id = gateway_id or uuid.uuid4().hex[:12]
        self.redis = redis or connect(target)
        self.keys = Keys(config.key_prefix, config.priority_bands)
        self.scripts = Scripts(self.redis)
        self._submits = SubmitBatcher(self.redis, self.scripts, telemetry)
        self.inbox = Inbox(self.redis, self.keys.inbox(self.gateway_id), ttl_s=config.inbox_ttl_s,
                           block_ms=config.block_ms)
        self._backends = list(backends)
        self._telemetry = telemetry
        self._max_depth = max_queue_depth
        self._retry_after = retry_after_s
        self._accepting = False
        self._max_buffered = max_buffered_events
        self._signals: set[asyncio.Task[None]] = set()
        self._refused = telemetry.meter.create_counter(
            "lockgate.dispatch.refused", unit="{job}", description="Jobs refused by the queue-depth check")
        self._wakes = telemetry.meter.create_counter(
            "lockgate.dispatch.wakes", unit="{job}",
            description="Jobs enqueued, by the bell that woke a worker: a packing worker's own (packed), an idle "
                        "worker's own (warm) or only the shared one; or none: taken by the gateway's own "
                        "process (local)")
        self._withdrawn = telemetry.meter.create_counter(
            "lockgate.dispatch.local_withdrawn", unit="{job}",
            description="Jobs started by the gateway's own worker (dispatch.local) that the submit then queued for "
                        "the fleet instead (jobs were waiting) or that failed to submit; their engine call aborted")
        self._watch = MasterWatch(self.redis, interval_s=config.redis.failover_check_s, telemetry=telemetry,
                                  role="gateway", on_change=self.inbox.master_changed)

    async def start(self) -> None:
        await self.inbox.start()
        self._watch.start()
        self._accepting = True

    async def close(self, grace_s: float = 0.0) -> None:
        """Stop accepting; let in-flight requests finish for ``grace_s``; fail and cancel what is left."""
        self._accepting = False
        if grace_s > 0:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(grace_s):  # not wait_for: on 3.11 it can swallow a cancellation
                    await self.inbox.drained.wait()
        for ticket in list(self.inbox.tickets.values()):
            await ticket.cancel()
        await asyncio.gather(*self._signals, return_exceptions=True)
        await self._submits.close()
        await self._watch.close()
        await self.inbox.close()
        await self.redis.aclose()

    async def submit(self, job: Job) -> RedisTicket:
        if not self._accepting:
            raise DispatchUnavailable("dispatch is not accepting jobs")
        if job.backend not in self._backends:
            raise DispatchUnavailable(f"no workers for backend {job.backend!r}")
        if not self.inbox.healthy:
            raise DispatchUnavailable("the job queue (Redis) is not reachable")
        job = msgspec.structs.replace(job, reply_to=self.inbox.key)
        ticket = RedisTicket(job, self._signal_cancel, self.inbox.unregister, self._max_buffered)
        streams = self.keys.job_streams(job.backend)
        target = streams.index(self.keys.jobs(job.backend, self.keys.band(job.priority))) + 1
        keys = self.keys.queue_keys(job.backend)
        # Registered before the XADD: a fast worker's first event must find its ticket.
        self.inbox.register(ticket)
        # Started before the submit, which then overlaps the engine's first token; settled by its answer.
        local = self._local.start_local(job, ticket) if self._local is not None else None
        try:
            if local is not None and not local.begun.is_set():
                # The local run sends its engine request first; then this process spends its client-side work on
                # sending the submit (0.2-0.7 ms of redis-py here, on 2 cores). Bounded: an in-process engine
                # may hold its first event until a batch slot frees.
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(LOCAL_HEAD_START_S):
                        await local.begun.wait()
            reply = await self._submits.submit(
                keys, [target, self._max_depth, encode_job(job), int(self.config.stream_ttl_s), GROUP, job.id,
                       job.tenant, local.consumer if local is not None else ""])
        except BaseException as exc:
            self.inbox.unregister(ticket)
            self._settle(local, job, None)
            if isinstance(exc, REDIS_ERRORS):
                raise DispatchUnavailable(f"Redis: {type(exc).__name__}") from exc
            raise
        if not reply[0]:
            self.inbox.unregister(ticket)
            self._settle(local, job, None)
            self._refused.add(1, {"lockgate.backend": job.backend})
            raise AdmissionRefused(job.backend, int(reply[1]), self._retry_after)
        how = int(reply[2])
        self._settle(local, job, text(reply[3]) if how == LOCAL else None, streams[target - 1])
        ticket.wake = _WAKES[how]
        # Per request: through the buffer, as the request's other records (observability/buffer.py).
        self._telemetry.buffer.record(self._wakes, 1, {"lockgate.backend": job.backend, WAKE: ticket.wake})
        return ticket

    def _settle(self, local: LocalStart | None, job: Job, entry_id: str | None, stream: str = "") -> None:
        if local is None:
            return
        if entry_id is not None:
            local.confirm(stream, entry_id)
        else:
            local.withdraw()
            self._telemetry.buffer.record(self._withdrawn, 1, {"lockgate.backend": job.backend})

    def _signal_cancel(self, ticket: RedisTicket) -> asyncio.Task[None]:
        task = asyncio.get_running_loop().create_task(self._cancel(ticket))
        self._signals.add(task)  # a strong reference until it is done
        task.add_done_callback(self._signals.discard)
        return task

    async def _cancel(self, ticket: RedisTicket) -> None:
        """Flag the job (a worker that has not started it skips it) and tell the backend's workers to abort."""
        job = ticket.job
        if ticket.wake == "local" and self._local is not None:
            self._local.cancel(job.id)  # at once; the flag and the message below still go out, as for any job
        try:
            # The flag and the message as their own commands: a Cluster pipeline refuses PUBLISH (not a keyed
            # command), and the flag lives in the gateway's slot, the queue in the backend's.
            await self.redis.set(Keys.cancel_flag(job.reply_to, job.id), b"1", ex=int(self.config.job_key_ttl_s))
            await self.redis.publish(self.keys.cancel_channel(job.backend), job.id)
            # A job still waiting leaves the queue at once, so it takes no turn from the tenants behind it.
            async with self.redis.pipeline(transaction=False) as pipe:
                pipe.zrem(self.keys.fair(job.backend, self.keys.band(job.priority)), job.id)
                pipe.hdel(self.keys.payloads(job.backend), job.id)
                await pipe.execute()
        except REDIS_ERRORS as exc:
            log.warning("could not signal cancellation of job %s: %s", job.id, exc)

    async def ping(self) -> bool:
        return self._accepting and self.inbox.healthy

    async def status(self) -> dict[str, BackendStatus]:
        """Health and load as live workers last reported them; a backend without a live worker is down."""
        async with self.redis.pipeline(transaction=False) as pipe:
            for name in self._backends:
                pipe.hgetall(self.keys.workers(name))
                for stream in self.keys.job_streams(name):
                    pipe.xlen(stream)
                    pipe.xpending(stream, GROUP)
                for queue in self.keys.fair_queues(name):
                    pipe.zcard(queue)
            replies = await pipe.execute(raise_on_error=False)
        now_ms = int(time.time() * 1000)
        out: dict[str, BackendStatus] = {}
        bands = self.keys.bands
        per_backend = 1 + 3 * bands
        for i, name in enumerate(self._backends):
            chunk = replies[i * per_backend:(i + 1) * per_backend]
            reports = _live_reports(chunk[0], now_ms)
            queued = 0
            streams = chunk[1:1 + 2 * bands]
            for length, pending in zip(streams[0::2], streams[1::2], strict=True):
                if isinstance(length, int):
                    queued += length - (pending["pending"] if isinstance(pending, dict) else 0)
            queued += sum(c for c in chunk[1 + 2 * bands:] if isinstance(c, int))
            out[name] = BackendStatus(health=_health(reports), load=_load(reports), queued=max(0, queued),
                                      running=sum(r.running for r in reports))
        return out


def _live_reports(raw: object, now_ms: int) -> list[WorkerReport]:
    if not isinstance(raw, dict):
        return []
    reports = []
    for value in raw.values():
        try:
            report = decode_report(value)
        except msgspec.DecodeError:
            continue
        if report.expires_ms > now_ms:
            reports.append(report)
    return reports


def _health(reports: list[WorkerReport]) -> Health:
    if not reports:
        return Health(HealthState.DOWN, "no live worker")
    if any(r.health.ok for r in reports):
        return Health(HealthState.OK)
    if any(r.health.state is HealthState.STARTING for r in reports):
        return Health(HealthState.STARTING, "workers starting")
    return Health(HealthState.DOWN, reports[0].health.reason or "all workers report down")


def _load(reports: list[WorkerReport]) -> Load | None:
    loads = [r.load for r in reports if r.load is not None]
    if not loads:
        return None
    kv = [x.kv_cache_usage for x in loads if x.kv_cache_usage is not None]
    return Load(waiting=sum(x.waiting for x in loads), running=sum(x.running for x in loads),
                kv_cache_usage=max(kv) if kv else None)
