"""Runs one job on one backend and guarantees its event contract, whatever the adapter does.

Every dispatch implementation drives adapters through ``run_job``: the job gets Started, Deltas and exactly
one terminal event; an adapter that raises or stops early yields ``Failed`` instead of a silent end.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any, TypeVar

import msgspec
from opentelemetry.trace import SpanKind, Status, StatusCode

from backends.events import Completed, Delta, Event, Failed, Started
from backends.protocol import Backend
from backends.request import GenerationRequest
from dispatch.job import Job
from observability import semconv as sc
from observability.propagation import context_from_traceparent
from observability.telemetry import Telemetry

log = logging.getLogger("lockgate.worker")
Emit = Callable[[Event], Awaitable[None]]
T = TypeVar("T")


def deadline_failure() -> Failed:
    return Failed(type="timeout", code="deadline_exceeded", status=504,
                  message="the request's deadline passed before a worker could start it")


async def run_job(backend: Backend, job: Job, emit: Emit, telemetry: Telemetry, worker_id: str = "") -> Event:
    """Drive ``backend.generate`` for ``job``; return the terminal event that was emitted.

    Cancelling the task that awaits this cancels the adapter exactly once, however often it is cancelled
    (see ``cancel_once``), and returns only once the adapter has cleaned up."""
    if job.expired():
        failure = deadline_failure()
        await emit(failure)
        return failure
    parent = context_from_traceparent(job.traceparent)
    with telemetry.tracer.start_as_current_span(
        f"process {job.backend}", kind=SpanKind.CONSUMER, context=parent,
        attributes={"messaging.operation.type": "process", "messaging.destination.name": job.backend,
                    sc.BACKEND: backend.name, sc.PROVIDER: backend.engine, sc.ATTEMPT: job.attempt,
                    sc.QUEUE_WAIT: max(0.0, (time.time_ns() - job.enqueued_ns) / 1e9), sc.PRIORITY: job.priority},
    ) as span:
        terminal = await cancel_once(_drive(backend, job, emit, worker_id))
        if isinstance(terminal, Failed):
            span.set_status(Status(StatusCode.ERROR, terminal.message))
            span.set_attribute(sc.ERROR_TYPE, terminal.code or terminal.type)
        return terminal


async def _drive(backend: Backend, job: Job, emit: Emit, worker_id: str) -> Event:
    terminal: Event | None = None
    saw_start = False
    saw_delta = False
    try:
        events = backend.generate(with_priority(job))
        try:
            async for event in events:
                if isinstance(event, Started):
                    saw_start = True
                    event = Started(backend=event.backend, engine=event.engine, worker=worker_id, t_ns=event.t_ns)
                elif not saw_start:
                    saw_start = True
                    await emit(Started(backend=backend.name, engine=backend.engine, worker=worker_id,
                                       t_ns=time.time_ns()))
                saw_delta = saw_delta or isinstance(event, Delta)
                await emit(event)
                if isinstance(event, Completed | Failed):
                    terminal = event
                    break
        finally:
            # Closed as soon as the terminal event is out (or on cancellation), so the adapter frees its
            # resources (an engine stream, a batch slot) now rather than whenever it is collected.
            aclose = getattr(events, "aclose", None)
            if aclose is not None:
                await aclose()
    except Exception as exc:  # an adapter bug must become one error event, never a hung client
        log.exception("backend %s raised while serving job %s", backend.name, job.id)
        terminal = Failed(type="engine_error", status=502, retryable=not saw_delta,
                          message=f"backend {backend.name!r} failed: {type(exc).__name__}")
        await emit(terminal)
    if terminal is None:
        terminal = Failed(type="engine_error", status=502,
                          message=f"backend {backend.name!r} ended the stream without finishing")
        await emit(terminal)
    return terminal


async def cancel_once(work: Coroutine[Any, Any, T]) -> T:
    """Await ``work`` in a task of its own that is cancelled at most once, when the caller first is.

    An adapter cleans up in the cancelled task: httpx closes an unread engine connection there, which is what
    makes vLLM and SGLang abort the request. A second cancellation during that cleanup (a job cancelled by
    its client's disconnect and again by a shutdown, by a Redis cancel message and a lost lease, ...)
    interrupts the close half-way: the socket stays open, parked as ACTIVE in httpx's pool, and the engine
    generates every remaining token for nobody. Here later cancellations only wait for the cleanup to end;
    the caller then sees its CancelledError as usual."""
    task = asyncio.ensure_future(work)
    try:
        return await asyncio.shield(task)
    except asyncio.CancelledError:
        task.cancel()
        while not task.done():
            try:
                await asyncio.wait({task})
            except asyncio.CancelledError:
                continue  # already cancelling: a further cancellation must not interrupt the cleanup
        if not task.cancelled() and task.exception() is not None:
            log.debug("a cancelled job ended with %r", task.exception())
        raise


def with_priority(job: Job) -> GenerationRequest:
    """The job's request carrying the job's priority band, which the adapters map into the engine request."""
    if job.request.priority == job.priority:
        return job.request
    return msgspec.structs.replace(job.request, priority=job.priority)


def is_token(event: Event) -> bool:
    return isinstance(event, Delta) and event.tokens > 0
