"""The async adapter over a fake engine: context checks, refusals, health, and cancellation reaching the engine."""

from __future__ import annotations

import asyncio
import collections
from collections.abc import Sequence as Seq

import pytest

from backends.events import Completed, Delta, Event, Failed, Started
from backends.inproc.adapter import InprocBackend
from backends.inproc.options import InprocOptions
from backends.inproc.scheduler import QueueFull, StepRecord
from backends.inproc.sequence import Sequence
from backends.inproc.sink import flush
from backends.protocol import HealthState
from backends.request import ChatMessage, GenerationRequest


class FakeEngine:
    """One character = one token; tokens are produced only when the test calls ``produce``."""

    max_model_len = 16
    eos_ids = frozenset({0})

    def __init__(self) -> None:
        self.seqs: list[Sequence] = []
        self.refuse: Exception | None = None
        self.dead: str | None = None
        self.cancels = 0
        self.steps: collections.deque[StepRecord] = collections.deque()

    def encode_chat(self, messages: Seq[ChatMessage]) -> list[int]:
        return [ord(c) for m in messages for c in m.content]

    def encode_text(self, prompt: str) -> list[int]:
        return [ord(c) for c in prompt]

    def decode(self, ids: Seq[int]) -> str:
        return "".join(chr(i) for i in ids)

    def submit(self, seq: Sequence) -> None:
        if self.refuse is not None:
            raise self.refuse
        self.seqs.append(seq)

    def cancelled(self, seq: Sequence) -> None:
        self.cancels += 1

    def running(self) -> int:
        return len(self.seqs)

    def waiting(self) -> int:
        return 0

    def close(self) -> None:
        pass

    def produce(self, token: int) -> None:
        for seq in self.seqs:
            seq.on_token(token)
        flush(s.sink for s in self.seqs)


def request(content: str, max_tokens: int = 4, **kw: object) -> GenerationRequest:
    return GenerationRequest(request_id="r", model="m", operation="chat", max_tokens=max_tokens,
                             messages=(ChatMessage("user", content),), **kw)  # type: ignore[arg-type]


async def started_backend(engine: FakeEngine) -> InprocBackend:
    backend = InprocBackend("b", "fake", InprocOptions(model="x"), lambda: engine)
    await backend.start()
    for _ in range(5000):
        if backend.inproc is not None:
            break
        await asyncio.sleep(0.001)
    return backend


async def collect(backend: InprocBackend, req: GenerationRequest) -> list[Event]:
    return [e async for e in backend.generate(req)]


@pytest.mark.anyio
async def test_prompt_at_the_context_limit_is_a_400_naming_it() -> None:
    backend = await started_backend(FakeEngine())
    events = await collect(backend, request("x" * 16))
    failed = events[-1]
    assert isinstance(failed, Failed)
    assert (failed.status, failed.code, failed.type) == (400, "context_length_exceeded", "invalid_request_error")
    assert "16 tokens" in failed.message


@pytest.mark.anyio
async def test_max_tokens_is_capped_to_the_room_left() -> None:
    engine = FakeEngine()
    backend = await started_backend(engine)
    gen = backend.generate(request("x" * 10, max_tokens=100))
    assert isinstance(await gen.__anext__(), Started)
    consumer = asyncio.ensure_future(gen.__anext__())
    await asyncio.sleep(0)
    assert engine.seqs[0].max_new_tokens == 6
    for _ in range(6):
        engine.produce(ord("a"))
    first = await consumer
    assert isinstance(first, Delta)
    rest = [e async for e in gen]
    done = rest[-1]
    assert isinstance(done, Completed)
    assert (done.finish_reasons, done.completion_tokens, done.prompt_tokens) == (("length",), 6, 10)


@pytest.mark.anyio
async def test_full_queue_and_dead_engine_are_retryable_503s() -> None:
    engine = FakeEngine()
    backend = await started_backend(engine)
    engine.refuse = QueueFull()
    assert (await collect(backend, request("hi")))[-1] == Failed(
        type="overloaded", status=503, retryable=True, message="backend 'b': engine queue is full")
    engine.refuse = RuntimeError("engine thread crashed: boom")
    failed = (await collect(backend, request("hi")))[-1]
    assert isinstance(failed, Failed)
    assert (failed.status, failed.retryable) == (503, True)
    engine.dead = "engine thread crashed: boom"
    health = await backend.health()
    assert health.state is HealthState.DOWN
    assert "boom" in health.reason


@pytest.mark.anyio
async def test_n_above_one_is_refused() -> None:
    backend = await started_backend(FakeEngine())
    failed = (await collect(backend, request("hi", n=2)))[-1]
    assert isinstance(failed, Failed)
    assert (failed.status, failed.param) == (400, "n")


@pytest.mark.anyio
async def test_leaving_early_marks_the_sequence_cancelled_for_the_engine() -> None:
    engine = FakeEngine()
    backend = await started_backend(engine)
    gen = backend.generate(request("hi", max_tokens=8))
    await gen.__anext__()
    consumer = asyncio.ensure_future(gen.__anext__())
    await asyncio.sleep(0)
    engine.produce(ord("a"))
    assert isinstance(await consumer, Delta)
    await gen.aclose()
    assert engine.seqs[0].cancelled
    assert engine.cancels == 1


@pytest.mark.anyio
async def test_health_is_starting_while_loading_and_down_when_loading_fails() -> None:
    gate = asyncio.Event()
    loop = asyncio.get_running_loop()

    def slow_load() -> FakeEngine:
        asyncio.run_coroutine_threadsafe(gate.wait(), loop).result(5)
        raise OSError("no such model directory")

    backend = InprocBackend("b", "fake", InprocOptions(model="x"), slow_load)
    await backend.start()
    assert (await backend.health()).state is HealthState.STARTING
    failed = (await collect(backend, request("hi")))[-1]
    assert isinstance(failed, Failed)
    assert (failed.status, failed.retryable) == (503, True)
    gate.set()
    for _ in range(500):
        if (await backend.health()).state is HealthState.DOWN:
            break
        await asyncio.sleep(0.01)
    health = await backend.health()
    assert health.state is HealthState.DOWN
    assert "no such model directory" in health.reason
    await backend.close()
