"""What sharing trips saves when submits arrive together (dispatch/redis/submits.py): N submits started in one
loop turn, as at a closed loop's wave, sent one call each (redis-py's own Script call, as before the batcher)
and through SubmitBatcher (the first alone, the rest in one pipeline), alternating, against a real Redis.

Printed per mode: the mean time from the wave's start to each submit's reply, and the event loop's CPU for the
wave (this process's CPU time), medians over the rounds.
Run: .venv/bin/python -m bench.submit_batch [--jobs 43] [--rounds 30] [--redis URL]   (a module: bench/dispatch.py
would shadow the dispatch package)
This is a benchmark, not a test: it asserts nothing, it prints what it measured.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

from dispatch.redis.connection import connect
from dispatch.redis.keys import GROUP, Keys
from dispatch.redis.scripts import Scripts
from dispatch.redis.submits import SubmitBatcher
from gateway.config.redis_target import parse_url
from observability.telemetry import Telemetry

PAYLOAD = b"x" * 600
"""About an encoded job's size (a short prompt)."""


async def wave(send: Callable[[int], Awaitable[Any]], jobs: int, first: int) -> tuple[float, float]:
    t0, c0 = time.perf_counter(), time.process_time()
    done: list[float] = []

    async def one(i: int) -> None:
        await send(first + i)
        done.append(time.perf_counter() - t0)

    await asyncio.gather(*(one(i) for i in range(jobs)))
    return statistics.fmean(done) * 1e3, (time.process_time() - c0) * 1e3


async def main(args: argparse.Namespace) -> None:
    redis = connect(parse_url(args.redis))
    keys = Keys(f"lgbench{uuid.uuid4().hex[:6]}", 2)
    queue = keys.queue_keys("b")
    target = keys.job_streams("b").index(keys.jobs("b", 0)) + 1
    scripts = Scripts(redis)
    batcher = SubmitBatcher(redis, scripts, Telemetry())

    def job_args(i: int) -> list[Any]:
        return [target, 10**9, PAYLOAD, 60, GROUP, f"j{i}", "t"]

    modes: dict[str, Callable[[int], Awaitable[Any]]] = {
        "one call each": lambda i: scripts.submit(keys=queue, args=job_args(i)),
        "shared trips": lambda i: batcher.submit(queue, job_args(i)),
    }
    results: dict[str, list[tuple[float, float]]] = {m: [] for m in modes}
    try:
        for stream in keys.job_streams("b"):
            await redis.xgroup_create(stream, GROUP, id="0", mkstream=True)
        n = 0
        for _ in range(args.rounds):
            for name, send in modes.items():
                results[name].append(await wave(send, args.jobs, n))
                n += args.jobs
                await scripts.take(keys=queue, args=[GROUP, "bench", args.jobs, 60])  # empty the queue again
        for name, rows in results.items():
            print(f"{name:14s} mean reply {statistics.median(r[0] for r in rows):6.2f} ms   "
                  f"loop CPU {statistics.median(r[1] for r in rows):6.2f} ms per wave of {args.jobs}")
    finally:
        await batcher.close()
        found = [k async for k in redis.scan_iter(match=f"{keys.prefix}:*")]
        if found:
            await redis.delete(*found)
        await redis.aclose()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--jobs", type=int, default=43, help="submits per wave (c=256 over 6 gateways: ~43)")
    parser.add_argument("--rounds", type=int, default=30)
    parser.add_argument("--redis", default="redis://127.0.0.1:6379/9")
    asyncio.run(main(parser.parse_args()))
