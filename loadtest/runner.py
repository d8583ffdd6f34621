"""Runs one phase (one load point, one round, the targets hit together) inside one client process.

Open loop: each request is sent at its scheduled time whatever the earlier ones do; a ``max_concurrency`` makes
late requests wait in the client, which TTFT_sched shows. Closed loop: each slot sends the next request as soon
as its previous one ended. Processes share one schedule: open loop by index modulo the process count, closed
loop through a shared counter of the next index.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Protocol

import msgspec

from loadtest.client import send
from loadtest.clock import RunClock
from loadtest.config import BenchSpec, LoadShape, Target
from loadtest.dataset import Dataset, build
from loadtest.record import RequestRecord
from loadtest.schedule import open_loop
from loadtest.tokens import TokenCounter, counter_for
from loadtest.transport import H1Transport, HttpxTransport, Transport


class Phase(msgspec.Struct, frozen=True):
    point: int
    round: int
    load: LoadShape
    targets: tuple[Target, ...]
    """Targets sent every request of this phase at once (one, unless targets run concurrently)."""


class Shard(msgspec.Struct, frozen=True):
    index: int = 0
    count: int = 1

    def share(self, total: int) -> int:
        """This process's part of ``total`` slots."""
        return total // self.count + (1 if self.index < total % self.count else 0)


class IndexSource(Protocol):
    def take(self) -> int: ...


class Tally(Protocol):
    def add(self, n: int) -> None: ...


class LocalIndex:
    def __init__(self) -> None:
        self._next = 0

    def take(self) -> int:
        i, self._next = self._next, self._next + 1
        return i


class _Context:
    def __init__(self, spec: BenchSpec, phase: Phase, clock: RunClock, tally: Tally) -> None:
        self.spec = spec
        self.phase = phase
        self.clock = clock
        self.tally = tally
        self.counter: TokenCounter = counter_for(spec.tokenizer)
        self.dataset: Dataset = build(spec.dataset, self.counter)
        self.records: list[RequestRecord] = []

    async def one(self, client: Transport, target: Target, index: int, t_sched: float) -> None:
        prompt = self.dataset.prompt(index)
        base = RequestRecord(target=target.name, point=self.phase.point, round=self.phase.round, index=index,
                             prompt_id=prompt.id, t_sched=t_sched, t_send=t_sched, n_in=prompt.input_tokens,
                             n_in_source="dataset")
        self.records.append(await send(client, self.spec, target, prompt, self.clock, self.counter, base))
        self.tally.add(1)


def _transport(spec: BenchSpec) -> Transport:
    return HttpxTransport(spec.timeout_s) if spec.http_client == "httpx" else H1Transport()


async def _open_loop(ctx: _Context, clients: Sequence[Transport], shard: Shard) -> None:
    spec, load, targets = ctx.spec, ctx.phase.load, ctx.phase.targets
    offsets = open_loop(load, spec.seed, spec.num_requests, spec.duration_s)
    limit = shard.share(load.max_concurrency) if load.max_concurrency else None
    sems = [asyncio.Semaphore(max(1, limit)) if limit is not None else None for _ in targets]

    async def limited(k: int, index: int, t_sched: float) -> None:
        sem = sems[k]
        if sem is None:
            await ctx.one(clients[k], targets[k], index, t_sched)
        else:
            async with sem:
                await ctx.one(clients[k], targets[k], index, t_sched)

    async with asyncio.TaskGroup() as tg:
        for index in range(shard.index, len(offsets), shard.count):
            await ctx.clock.sleep_until(offsets[index])
            for k in range(len(targets)):
                tg.create_task(limited(k, index, offsets[index]))


async def _closed_loop(ctx: _Context, clients: Sequence[Transport], shard: Shard,
                       sources: Sequence[IndexSource]) -> None:
    spec, load = ctx.spec, ctx.phase.load
    assert load.concurrency is not None

    def past_bound(index: int, now: float) -> bool:
        return (spec.num_requests is not None and index >= spec.num_requests) or (
            spec.duration_s is not None and now >= spec.duration_s)

    async def slot(k: int) -> None:
        while True:
            index = sources[k].take()
            now = ctx.clock.now()
            if past_bound(index, now):
                return
            await ctx.one(clients[k], ctx.phase.targets[k], index, now)

    async def interleaved_slot() -> None:
        targets = ctx.phase.targets
        while True:
            index = sources[0].take()
            if past_bound(index, ctx.clock.now()):
                return
            for j in range(len(targets)):
                k = (index + j) % len(targets)
                await ctx.one(clients[k], targets[k], index, ctx.clock.now())

    async with asyncio.TaskGroup() as tg:
        if spec.interleave:
            for _ in range(shard.share(load.concurrency)):
                tg.create_task(interleaved_slot())
            return
        for k in range(len(ctx.phase.targets)):
            for _ in range(shard.share(load.concurrency)):
                tg.create_task(slot(k))


async def run_phase(spec: BenchSpec, phase: Phase, start_wall_ns: int, tally: Tally, shard: Shard | None = None,
                    sources: Sequence[IndexSource] | None = None) -> list[RequestRecord]:
    """Run this process's share of ``phase``; the run clock's zero is ``start_wall_ns``."""
    shard = shard or Shard()
    clock = RunClock(start_wall_ns)
    ctx = _Context(spec, phase, clock, tally)
    clients = [_transport(spec) for _ in phase.targets]
    try:
        await clock.sleep_until(0.0)
        if phase.load.concurrency is not None:
            await _closed_loop(ctx, clients, shard, sources or [LocalIndex() for _ in phase.targets])
        else:
            await _open_loop(ctx, clients, shard)
    finally:
        for c in clients:
            await c.aclose()
    return ctx.records
