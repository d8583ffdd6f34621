"""The continuous-batching scheduler, on a fake runner: joins, leaves, limits, cancellation and crashes."""

from __future__ import annotations

import asyncio
import threading

import pytest

from backends.events import Completed, Delta, Event, Failed
from backends.inproc.scheduler import QueueFull, Scheduler
from backends.inproc.sequence import SamplingParams, Sequence
from backends.inproc.sink import EventSink

EOS = 0


class FakeRunner:
    """Emits token ``1`` forever (EOS never), optionally failing; records batch rows per decode."""

    def __init__(self, fail_decode_at: int | None = None, gate: threading.Event | None = None) -> None:
        self.rows: list[Sequence] = []
        self.decodes: list[int] = []
        self.fail_decode_at = fail_decode_at
        self.gate = gate

    def prefill(self, seq: Sequence) -> int:
        self.rows.append(seq)
        return 1

    def decode(self, seqs: list[Sequence]) -> list[int]:
        if self.gate is not None:
            self.gate.wait(5)
        assert seqs == self.rows
        self.decodes.append(len(seqs))
        if self.fail_decode_at is not None and len(self.decodes) >= self.fail_decode_at:
            raise RuntimeError("boom")
        return [1] * len(seqs)

    def remove(self, rows: list[int]) -> None:
        self.rows = [s for i, s in enumerate(self.rows) if i not in set(rows)]

    def reset(self) -> None:
        self.rows = []


def make_seq(sink: EventSink, max_new: int) -> Sequence:
    return Sequence(prompt_ids=[5, 6, 7], max_new_tokens=max_new, sampling=SamplingParams(temperature=0.0),
                    stop=(), eos_ids={EOS}, ignore_eos=False, min_tokens=0, decode=lambda ids: "x" * len(ids),
                    sink=sink)


async def drain(sink: EventSink) -> list[Event]:
    events: list[Event] = []
    while not events or not isinstance(events[-1], Completed | Failed):
        events.append(await asyncio.wait_for(sink.get(), 5))
    return events


def scheduler(runner: FakeRunner, **kw: int) -> Scheduler:
    opts = {"max_batch_size": 4, "max_batch_tokens": 10_000, "max_waiting": 8, "step_log_size": 1000} | kw
    return Scheduler(runner, name="t", **opts)


@pytest.mark.anyio
async def test_sequences_share_steps_and_leave_when_done() -> None:
    runner = FakeRunner()
    sched = scheduler(runner)
    loop = asyncio.get_running_loop()
    sinks = [EventSink(loop) for _ in range(3)]
    for sink, n in zip(sinks, (2, 5, 9), strict=True):
        sched.submit(make_seq(sink, n))
    sched.start()
    results = [await drain(s) for s in sinks]
    sched.stop()
    for events, n in zip(results, (2, 5, 9), strict=True):
        done = events[-1]
        assert isinstance(done, Completed)
        assert done.completion_tokens == n
        assert done.prompt_tokens == 3
        assert sum(e.tokens for e in events if isinstance(e, Delta)) == n
    # All three decoded together, then the batch shrank as each finished.
    assert runner.decodes[0] == 3
    assert runner.decodes == sorted(runner.decodes, reverse=True)
    assert sched.max_batch_seen == 3


@pytest.mark.anyio
async def test_max_batch_size_bounds_a_step_and_waiting_ones_join_later() -> None:
    runner = FakeRunner()
    sched = scheduler(runner, max_batch_size=2)
    loop = asyncio.get_running_loop()
    sinks = [EventSink(loop) for _ in range(5)]
    for sink in sinks:
        sched.submit(make_seq(sink, 3))
    sched.start()
    for s in sinks:
        assert isinstance((await drain(s))[-1], Completed)
    sched.stop()
    assert max(runner.decodes) == 2
    assert any(step.prefilled for step in list(sched.steps)[1:]), "later sequences joined a later step"


@pytest.mark.anyio
async def test_cancellation_frees_the_slot_at_the_next_step() -> None:
    runner = FakeRunner()
    sched = scheduler(runner, max_batch_size=1)
    loop = asyncio.get_running_loop()
    first, second = EventSink(loop), EventSink(loop)
    long_seq = make_seq(first, 10_000)
    sched.submit(long_seq)
    sched.submit(make_seq(second, 2))
    sched.start()
    await asyncio.wait_for(first.get(), 5)
    long_seq.cancelled = True
    sched.wake()
    assert isinstance((await drain(second))[-1], Completed)
    sched.stop()
    assert long_seq not in runner.rows


@pytest.mark.anyio
async def test_a_failing_step_fails_its_requests_and_the_engine_goes_on() -> None:
    runner = FakeRunner(fail_decode_at=2)
    sched = scheduler(runner)
    loop = asyncio.get_running_loop()
    sinks = [EventSink(loop) for _ in range(2)]
    for sink in sinks:
        sched.submit(make_seq(sink, 50))
    sched.start()
    for s in sinks:
        failed = (await drain(s))[-1]
        assert isinstance(failed, Failed)
        assert "boom" in failed.message
    runner.fail_decode_at = None
    after = EventSink(loop)
    sched.submit(make_seq(after, 2))
    assert isinstance((await drain(after))[-1], Completed)
    sched.stop()


@pytest.mark.anyio
async def test_a_dead_engine_thread_fails_every_request() -> None:
    runner = FakeRunner()

    def die(seqs: list[Sequence]) -> list[int]:
        raise SystemExit("thread killed")  # not an Exception: the loop itself dies

    runner.decode = die  # type: ignore[method-assign]
    sched = scheduler(runner)
    loop = asyncio.get_running_loop()
    sinks = [EventSink(loop) for _ in range(3)]
    for sink in sinks:
        sched.submit(make_seq(sink, 5))
    sched.start()
    for s in sinks:
        assert isinstance((await drain(s))[-1], Failed)
    with pytest.raises(RuntimeError, match="crashed"):
        sched.submit(make_seq(EventSink(loop), 1))


def test_queue_full_is_refused() -> None:
    sched = scheduler(FakeRunner(), max_batch_size=1, max_waiting=1)
    loop = asyncio.new_event_loop()
    try:
        sched.submit(make_seq(EventSink(loop), 1))
        sched.submit(make_seq(EventSink(loop), 1))
        with pytest.raises(QueueFull):
            sched.submit(make_seq(EventSink(loop), 1))
    finally:
        loop.close()
