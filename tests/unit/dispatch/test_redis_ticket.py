"""The gateway-side ticket: events only from the latest worker; no replay after the first token."""

from __future__ import annotations

import asyncio

import pytest

from backends.events import Completed, Delta, Event, Failed, Started
from backends.request import GenerationRequest
from dispatch.job import Job
from dispatch.redis.ticket import RedisTicket


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


def make_ticket(max_buffered: int = 0) -> tuple[RedisTicket, list[str]]:
    cancelled: list[str] = []

    async def signal(t: RedisTicket) -> None:
        cancelled.append(t.job.id)

    def on_cancel(t: RedisTicket) -> asyncio.Task[None]:
        return asyncio.get_running_loop().create_task(signal(t))

    job = Job(id="j1", model="m", backend="b",
              request=GenerationRequest(request_id="r", model="m", operation="chat", max_tokens=4))
    return RedisTicket(job, on_cancel, lambda _: None, max_buffered), cancelled


def started(worker: str) -> Started:
    return Started(backend="b", engine="sim", worker=worker)


async def drain(ticket: RedisTicket) -> list[Event]:
    return [e async for e in ticket.events()]


@pytest.mark.anyio
async def test_rerun_before_first_token_is_accepted() -> None:
    ticket, _ = make_ticket()
    ticket.deliver("w1", [started("w1")])
    ticket.deliver("w2", [started("w2"), Delta(text="a", tokens=1)])
    ticket.deliver("w2", [Completed(finish_reasons=("stop",), prompt_tokens=1, completion_tokens=1)])
    events = await drain(ticket)
    assert [type(e) for e in events] == [Started, Started, Delta, Completed]
    assert ticket.done


@pytest.mark.anyio
async def test_new_worker_after_a_token_ends_the_stream_with_one_error() -> None:
    ticket, cancelled = make_ticket()
    ticket.deliver("w1", [started("w1"), Delta(text="a", tokens=1)])
    ticket.deliver("w2", [started("w2"), Delta(text="a", tokens=1)])
    ticket.deliver("w2", [Delta(text="b", tokens=1)])
    events = await drain(ticket)
    assert [type(e) for e in events] == [Started, Delta, Failed]
    last = events[-1]
    assert isinstance(last, Failed)
    assert last.code == "worker_lost"
    await asyncio.sleep(0)
    assert cancelled == ["j1"]  # the pointless re-run is told to stop


@pytest.mark.anyio
async def test_late_events_of_a_replaced_worker_are_dropped() -> None:
    ticket, _ = make_ticket()
    ticket.deliver("w1", [started("w1")])
    ticket.deliver("w2", [started("w2")])
    ticket.deliver("w1", [Delta(text="stale", tokens=1)])
    ticket.deliver("w2", [Delta(text="x", tokens=1),
                          Completed(finish_reasons=("stop",), prompt_tokens=1, completion_tokens=1)])
    texts = [e.text for e in await drain(ticket) if isinstance(e, Delta)]
    assert texts == ["x"]


@pytest.mark.anyio
async def test_nothing_is_delivered_after_the_terminal_event_or_cancel() -> None:
    ticket, cancelled = make_ticket()
    ticket.deliver("w1", [started("w1"), Failed(type="engine_error", message="x")])
    ticket.deliver("w1", [Delta(text="late", tokens=1)])
    assert [type(e) for e in await drain(ticket)] == [Started, Failed]
    other, cancelled = make_ticket()
    await other.cancel()
    other.deliver("w1", [started("w1")])
    assert other._queue.empty()
    assert cancelled == ["j1"]


@pytest.mark.anyio
async def test_a_client_too_slow_for_its_buffer_gets_one_error_and_the_job_is_cancelled() -> None:
    ticket, cancelled = make_ticket(max_buffered=4)
    ticket.deliver("w1", [started("w1"), Delta(text="a", tokens=1), Delta(text="b", tokens=1)])
    ticket.deliver("w1", [Delta(text="c", tokens=1), Delta(text="d", tokens=1)])
    ticket.deliver("w1", [Delta(text="late", tokens=1)])
    events = await drain(ticket)
    assert [type(e) for e in events] == [Started, Delta, Delta, Failed]
    last = events[-1]
    assert isinstance(last, Failed)
    assert last.code == "slow_consumer"
    await asyncio.sleep(0)
    assert cancelled == ["j1"]


@pytest.mark.anyio
async def test_ready_hands_over_what_is_buffered_up_to_the_terminal_event() -> None:
    ticket, _ = make_ticket()
    ticket.deliver("w1", [started("w1"), Delta("a", 1), Delta("b", 1)])
    stream = ticket.events().__aiter__()
    assert isinstance(await anext(stream), Started)
    assert ticket.ready() == [Delta("a", 1), Delta("b", 1)]
    assert ticket.ready() == []
    ticket.deliver("w1", [Delta("c", 1), Completed(("length",), 1, 3)])
    assert await anext(stream) == Delta("c", 1)
    assert ticket.ready() == [Completed(("length",), 1, 3)]
