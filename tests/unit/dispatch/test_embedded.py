"""The embedded dispatch: admission, priority, cancellation, deadlines, shutdown."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest

from backends.events import Completed, Delta, Event, Failed
from backends.request import GenerationRequest
from backends.sim.engine import SimBackend
from backends.sim.options import SimOptions
from dispatch.contract import AdmissionRefused, DispatchUnavailable
from dispatch.embedded import EmbeddedDispatcher, EmbeddedTicket
from dispatch.job import Job, decode_job, encode_job
from observability.telemetry import Telemetry

pytestmark = pytest.mark.anyio


def job(i: int = 0, priority: int = 0, **kw: Any) -> Job:
    request = GenerationRequest(request_id=f"r{i}", model="m", operation="text_completion", prompt=f"p{i}",
                                max_tokens=kw.pop("max_tokens", 3), extra={"ignore_eos": True})
    return Job(id=f"j{i}", model="m", backend="sim", request=request, priority=priority,
               enqueued_ns=time.time_ns(), **kw)


async def make(depth: int = 10, **opts: Any) -> tuple[EmbeddedDispatcher, SimBackend]:
    sim = SimBackend("sim", SimOptions(**{"ttft_ms": 0, "tpot_ms": 1, **opts}))
    await sim.start()
    d = EmbeddedDispatcher({"sim": sim}, telemetry=Telemetry(), max_queue_depth=depth, retry_after_s=2)
    await d.start()
    return d, sim


async def drain(ticket: EmbeddedTicket) -> list[Event]:
    return [e async for e in ticket.events()]


async def test_job_runs_to_one_terminal_event() -> None:
    d, _ = await make()
    events = await drain(await d.submit(job()))
    assert isinstance(events[-1], Completed)
    assert sum(isinstance(e, Completed | Failed) for e in events) == 1
    await d.close()


async def test_queue_depth_admission_is_refused_with_retry_after() -> None:
    d, _ = await make(depth=2, ttft_ms=200, batch_capacity=1)
    running = await d.submit(job(0))
    await asyncio.sleep(0.02)  # the single worker takes it
    await d.submit(job(1))
    await d.submit(job(2))
    with pytest.raises(AdmissionRefused) as err:
        await d.submit(job(3))
    assert err.value.retry_after == 2
    assert err.value.depth == 2
    await running.cancel()
    await d.close()


async def test_higher_priority_is_served_first() -> None:
    d, _ = await make(ttft_ms=30, batch_capacity=1)
    first = await d.submit(job(0))
    await asyncio.sleep(0.01)
    low = await d.submit(job(1, priority=0))
    high = await d.submit(job(2, priority=5))
    order: list[str] = []

    async def watch(name: str, t: EmbeddedTicket) -> None:
        async for e in t.events():
            if isinstance(e, Delta):
                order.append(name)
                return

    await asyncio.gather(watch("first", first), watch("low", low), watch("high", high))
    assert order == ["first", "high", "low"]
    await d.close()


async def test_cancel_running_job_aborts_the_engine_call() -> None:
    d, sim = await make(tpot_ms=50)
    ticket = await d.submit(job(max_tokens=1000))
    async for e in ticket.events():
        if isinstance(e, Delta):
            break
    await ticket.cancel()
    await asyncio.sleep(0.05)
    assert d.running("sim") == 0
    assert sim.cancelled_requests == 1
    await d.close()


async def test_cancel_before_start_never_runs() -> None:
    d, sim = await make(ttft_ms=100, batch_capacity=1)
    busy = await d.submit(job(0))
    await asyncio.sleep(0.01)
    waiting = await d.submit(job(1))
    await waiting.cancel()
    await drain(busy)
    await asyncio.sleep(0.05)
    assert sim.started_requests == 1
    await d.close()


async def test_job_past_deadline_is_not_started() -> None:
    d, sim = await make()
    events = await drain(await d.submit(job(deadline_ns=time.time_ns() - 1)))
    assert isinstance(events[-1], Failed)
    assert events[-1].code == "deadline_exceeded"
    assert sim.started_requests == 0
    await d.close()


async def test_close_fails_waiting_jobs_and_refuses_new_ones() -> None:
    d, _ = await make(ttft_ms=500, batch_capacity=1)
    await d.submit(job(0))
    await asyncio.sleep(0.01)
    waiting = await d.submit(job(1))
    await d.close(grace_s=0)
    events = await drain(waiting)
    assert isinstance(events[-1], Failed)
    assert events[-1].status == 503
    with pytest.raises(DispatchUnavailable):
        await d.submit(job(2))


async def test_job_roundtrips_through_msgpack() -> None:
    j = job(7, priority=2, traceparent="00-" + "a" * 32 + "-" + "b" * 16 + "-01")
    assert decode_job(encode_job(j)) == j


async def test_ready_drains_without_waiting_and_stops_at_the_terminal_event() -> None:
    d, _ = await make(tpot_ms=0)
    ticket = await d.submit(job(max_tokens=5))
    stream = ticket.events().__aiter__()
    seen = [await anext(stream)]
    while not isinstance(seen[-1], Completed):
        await asyncio.sleep(0.01)  # the job runs ahead: its events wait in the ticket
        seen.extend(ticket.ready())
    assert sum(isinstance(e, Delta) and e.tokens for e in seen) == 5
    assert ticket.ready() == []
    await d.close()
