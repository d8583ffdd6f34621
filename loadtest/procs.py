"""Spreads one phase over client processes so the load generator is not the bottleneck.

A single Python process saturates at a few hundred streamed requests per second; past that the client's own
queueing would show up as engine latency. Children are forked (no event loop runs in the parent), share the
schedule and the next-index counters, and send their records back as msgpack.
"""

from __future__ import annotations

import asyncio
import math
import multiprocessing as mp
import os
import queue
import time
from collections.abc import Sequence
from multiprocessing.sharedctypes import Synchronized
from typing import Any

import msgspec

from loadtest.config import BenchSpec, LoadShape
from loadtest.progress import LocalTally, ProgressBar
from loadtest.record import RequestRecord
from loadtest.runner import Phase, Shard, run_phase

# Rough single-process ceilings of this client on one core (see docs/bench.md, "client overhead").
RATE_PER_PROCESS = 150.0
INFLIGHT_PER_PROCESS = 200
START_DELAY_S = 0.3


def processes_for(spec: BenchSpec, load: LoadShape, targets: int) -> int:
    if spec.processes:
        return spec.processes
    need = max(math.ceil((load.rate or 0.0) * targets / RATE_PER_PROCESS),
               math.ceil((load.concurrency or 0) * targets / INFLIGHT_PER_PROCESS), 1)
    return max(1, min(need, os.cpu_count() or 1))


class SharedIndex:
    def __init__(self, value: Synchronized[int]) -> None:
        self._value = value

    def take(self) -> int:
        with self._value.get_lock():
            i = self._value.value
            self._value.value = i + 1
            return i


class SharedTally:
    def __init__(self, value: Synchronized[int]) -> None:
        self._value = value

    def add(self, n: int) -> None:
        with self._value.get_lock():
            self._value.value += n


def new_runner() -> asyncio.Runner:
    try:
        import uvloop
    except ImportError:  # pragma: no cover - uvloop is a dependency off Windows
        return asyncio.Runner()
    return asyncio.Runner(loop_factory=uvloop.new_event_loop)


def _child(spec: BenchSpec, phase: Phase, start_wall_ns: int, shard: Shard, counters: Sequence[Synchronized[int]],
           done: Synchronized[int], out: Any) -> None:
    with new_runner() as runner:
        records = runner.run(run_phase(spec, phase, start_wall_ns, SharedTally(done), shard,
                                       [SharedIndex(c) for c in counters]))
    out.put(msgspec.msgpack.encode(records))


def execute(spec: BenchSpec, phase: Phase, *, processes: int, label: str, progress: bool) -> list[RequestRecord]:
    total = spec.num_requests * len(phase.targets) if spec.num_requests else None
    if processes <= 1:
        tally = LocalTally()
        with ProgressBar(label, total, spec.duration_s, tally, enabled=progress), new_runner() as runner:
            return runner.run(run_phase(spec, phase, time.time_ns(), tally))
    ctx = mp.get_context("fork")
    counters = [ctx.Value("q", 0) for _ in phase.targets]
    done = ctx.Value("q", 0)
    out = ctx.Queue()
    start = time.time_ns() + int(START_DELAY_S * 1e9)
    children = [ctx.Process(target=_child, args=(spec, phase, start, Shard(i, processes), counters, done, out),
                            daemon=True) for i in range(processes)]
    for c in children:
        c.start()
    records: list[RequestRecord] = []
    decoder = msgspec.msgpack.Decoder(list[RequestRecord])
    with ProgressBar(label, total, spec.duration_s, done, enabled=progress):
        received = 0
        while received < processes:
            try:
                records.extend(decoder.decode(out.get(timeout=0.5)))
                received += 1
            except queue.Empty:
                if all(not c.is_alive() for c in children) and out.empty():
                    raise RuntimeError("a client process died without results") from None
    for c in children:
        c.join()
    return records
