"""The simulated engine: deterministic text, limits, stops, chunking, faults, batch capacity."""

from __future__ import annotations

import asyncio
import itertools
import time
from typing import Any

import pytest

from backends.events import Completed, Delta, Event, Failed, Started
from backends.request import GenerationRequest
from backends.sim.engine import SimBackend
from backends.sim.options import SimOptions
from backends.sim.stops import StopScanner

pytestmark = pytest.mark.anyio


def req(prompt: str = "hello world", **kw: Any) -> GenerationRequest:
    return GenerationRequest(request_id="r", model="m", operation="text_completion", prompt=prompt,
                             max_tokens=kw.pop("max_tokens", 10), **kw)


async def run(backend: SimBackend, request: GenerationRequest) -> list[Event]:
    return [e async for e in backend.generate(request)]


async def started(**opts: Any) -> SimBackend:
    backend = SimBackend("sim", SimOptions(**{"ttft_ms": 0, "tpot_ms": 0, **opts}))
    await backend.start()
    return backend


def text_of(events: list[Event], index: int = 0) -> str:
    return "".join(e.text for e in events if isinstance(e, Delta) and e.index == index)


async def test_event_sequence_and_usage() -> None:
    events = await run(await started(), req(max_tokens=5, extra={"ignore_eos": True}))
    assert isinstance(events[0], Started)
    assert isinstance(events[-1], Completed)
    assert events[-1].finish_reasons == ("length",)
    assert events[-1].completion_tokens == 5
    assert events[-1].prompt_tokens == 2
    assert sum(e.tokens for e in events if isinstance(e, Delta)) == 5


async def test_text_is_deterministic_per_prompt_and_seed() -> None:
    b = await started()
    a1 = text_of(await run(b, req("alpha", extra={"ignore_eos": True})))
    a2 = text_of(await run(b, req("alpha", extra={"ignore_eos": True})))
    other = text_of(await run(b, req("beta", extra={"ignore_eos": True})))
    seeded = text_of(await run(b, req("alpha", seed=3, extra={"ignore_eos": True})))
    assert a1 == a2
    assert a1 != other
    assert a1 != seeded


async def test_natural_end_min_tokens_and_ignore_eos() -> None:
    b = await started(eos_min_tokens=4, eos_max_tokens=4)
    natural = (await run(b, req(max_tokens=10)))[-1]
    assert isinstance(natural, Completed)
    assert (natural.completion_tokens, natural.finish_reasons) == (4, ("stop",))
    longer = (await run(b, req(max_tokens=10, extra={"min_tokens": 7})))[-1]
    assert isinstance(longer, Completed)
    assert longer.completion_tokens == 7
    forced = (await run(b, req(max_tokens=10, extra={"ignore_eos": True})))[-1]
    assert isinstance(forced, Completed)
    assert (forced.completion_tokens, forced.finish_reasons) == (10, ("length",))


async def test_stop_string_is_cut_even_across_tokens() -> None:
    b = await started()
    full = text_of(await run(b, req(max_tokens=12, extra={"ignore_eos": True})))
    words = full.split(" ")
    # A stop string spanning the end of word 3 and the start of word 4.
    stop = words[3][-2:] + " " + words[4][:2]
    events = await run(b, req(max_tokens=12, stop=(stop,), extra={"ignore_eos": True}))
    done = events[-1]
    assert isinstance(done, Completed)
    assert done.finish_reasons == ("stop",)
    assert text_of(events) == full[: full.index(stop)]


async def test_tokens_per_chunk_groups_tokens() -> None:
    events = await run(await started(tokens_per_chunk=3), req(max_tokens=7, extra={"ignore_eos": True}))
    assert [e.tokens for e in events if isinstance(e, Delta)] == [3, 3, 1]


async def test_n_choices_are_distinct() -> None:
    events = await run(await started(), req(max_tokens=4, n=3, extra={"ignore_eos": True}))
    texts = {text_of(events, i) for i in range(3)}
    assert len(texts) == 3
    done = events[-1]
    assert isinstance(done, Completed)
    assert done.completion_tokens == 12


async def test_context_overflow_is_a_400_naming_the_limit() -> None:
    events = await run(await started(max_model_len=8), req("one two three four five six seven eight nine"))
    failed = events[-1]
    assert isinstance(failed, Failed)
    assert (failed.status, failed.code) == (400, "context_length_exceeded")
    assert "maximum context length is 8 tokens" in failed.message


async def test_faults_from_prompt_markers() -> None:
    b = await started()
    before = await run(b, req("[[sim:fail_before]]"))
    assert isinstance(before[-1], Failed)
    assert before[-1].retryable
    assert not any(isinstance(e, Delta) for e in before)
    after = await run(b, req("[[sim:fail_after=3]]", max_tokens=20, extra={"ignore_eos": True}))
    assert isinstance(after[-1], Failed)
    assert not after[-1].retryable
    assert sum(e.tokens for e in after if isinstance(e, Delta)) == 3
    with pytest.raises(TimeoutError):
        await asyncio.wait_for(run(b, req("[[sim:hang]]")), 0.2)


async def test_fault_from_options_and_markers_can_be_disabled() -> None:
    b = await started(fault="fail_before_first_token")
    assert isinstance((await run(b, req()))[-1], Failed)
    quiet = await started(faults_from_prompt=False)
    assert isinstance((await run(quiet, req("[[sim:fail_before]]")))[-1], Completed)


async def test_timing_follows_ttft_and_tpot() -> None:
    b = await started(ttft_ms=50, tpot_ms=20)
    t0 = time.perf_counter()
    stamps = []
    async for e in b.generate(req(max_tokens=6, extra={"ignore_eos": True})):
        if isinstance(e, Delta):
            stamps.append(time.perf_counter() - t0)
    assert stamps[0] >= 0.049
    gaps = [b - a for a, b in itertools.pairwise(stamps)]
    # Deadlines are absolute, so the mean gap has no accumulated drift.
    assert sum(gaps) / len(gaps) == pytest.approx(0.020, abs=0.004)


async def test_batch_capacity_queues_and_reports_load() -> None:
    b = await started(ttft_ms=100, batch_capacity=2)
    tasks = [asyncio.create_task(run(b, req(f"p{i}", max_tokens=1))) for i in range(3)]
    await asyncio.sleep(0.03)
    load = await b.load()
    assert (load.running, load.waiting) == (2, 1)
    await asyncio.gather(*tasks)
    load = await b.load()
    assert (load.running, load.waiting) == (0, 0)


async def test_slowdown_grows_with_running_sequences() -> None:
    async def mean_gap(concurrency: int) -> float:
        b = await started(tpot_ms=10, slowdown_per_running=0.5)

        async def one(i: int) -> list[float]:
            stamps = []
            async for e in b.generate(req(f"s{i}", max_tokens=6, extra={"ignore_eos": True})):
                if isinstance(e, Delta):
                    stamps.append(time.perf_counter())
            return [y - x for x, y in itertools.pairwise(stamps)]

        gaps = [g for gs in await asyncio.gather(*(one(i) for i in range(concurrency))) for g in gs]
        return sum(gaps) / len(gaps)

    alone, crowded = await mean_gap(1), await mean_gap(4)
    # 3 other sequences at +50% each: 2.5x the per-token time.
    assert crowded / alone == pytest.approx(2.5, rel=0.25)


async def test_health_starting_then_ok() -> None:
    now = [0.0]
    b = SimBackend("s", SimOptions(start_delay_ms=1000), clock=lambda: now[0])
    assert (await b.health()).state.value == "starting"
    await b.start()
    assert (await b.health()).state.value == "starting"
    now[0] = 1.5
    assert (await b.health()).ok
    await b.close()
    assert (await b.health()).state.value == "down"


def test_stop_scanner_holds_back_possible_prefixes() -> None:
    s = StopScanner(("END",))
    # Holds back len("END") - 1 characters: only what could still start the stop string.
    assert s.push("abc E") == "abc"
    assert s.push("N") == " "
    assert s.push("D more") == ""
    assert s.stopped
    assert s.flush() == ""
    plain = StopScanner(())
    assert plain.push("abc") == "abc"
    assert plain.flush() == ""
