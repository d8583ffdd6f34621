"""CPU per event batch of a worker's inbox writer, as at a busy engine's step: N running jobs each emit one token
delta at once, and the writer sends them all at its next tick (``coalesce_ms``), to 4 gateways' inboxes.

Prints the worker's CPU (this process) and Redis's (``INFO cpu``) per batch. Compare revisions by running this file
from each checkout: it imports the writer of the checkout it sits in (its ``Outbox`` API is the same in both).
Needs a Redis (``--url``, default redis://127.0.0.1:6379/9); its keys carry a random prefix and are deleted.

Run: .venv/bin/python bench/inbox_writer.py [--jobs 4,16,64] [--steps 800] [--rounds 2]
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from redis.asyncio import Redis

from backends.events import Delta
from bench.dispatch import redis_cpu_s
from dispatch.redis.keys import Keys
from dispatch.redis.outbox import Outbox
from dispatch.redis.writer import InboxWriter

GATEWAYS = 4


async def one(url: str, jobs: int, steps: int) -> tuple[float, float]:
    client = Redis.from_url(url)
    keys = Keys(f"lgb{uuid.uuid4().hex[:8]}", 1)
    inboxes = [keys.inbox(f"gw{g}") for g in range(GATEWAYS)]
    try:
        for inbox in inboxes:
            await client.xadd(inbox, {"hello": "1"})
            await client.expire(inbox, 120)
        writer = InboxWriter(client, marker_ttl_s=60, window_s=0.001)
        writer.start()
        boxes = [Outbox(writer, inbox=inboxes[j % GATEWAYS], job_id=f"job{j}", worker_id="w", ack=("s", "0-1"))
                 for j in range(jobs)]
        delta = Delta(text=" word", tokens=1)
        for box in boxes:  # the first tokens (urgent, with the streamed markers) are not what is measured
            await box.emit(delta)
        await asyncio.gather(*(box.flush() for box in boxes))
        r0, t0 = redis_cpu_s(url), time.process_time()
        for _ in range(steps):
            for box in boxes:
                await box.emit(delta)
            await asyncio.gather(*(box.flush() for box in boxes))
        worker, server = time.process_time() - t0, redis_cpu_s(url) - r0
        await writer.close()
        batches = jobs * steps
        return worker / batches * 1e6, server / batches * 1e6
    finally:
        found = [k async for k in client.scan_iter(match=f"{keys.prefix}:*")]
        if found:
            await client.delete(*found)
        await client.aclose()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--url", default="redis://127.0.0.1:6379/9")
    ap.add_argument("--jobs", default="4,16,64", help="running jobs per worker, comma-separated")
    ap.add_argument("--steps", type=int, default=800, help="engine steps (one delta per job each)")
    ap.add_argument("--rounds", type=int, default=2)
    args = ap.parse_args()
    print(f"{'round':>5} {'jobs':>5} {'worker µs/batch':>16} {'redis µs/batch':>15}")
    for r in range(args.rounds):
        for jobs in (int(j) for j in args.jobs.split(",")):
            worker, server = asyncio.run(one(args.url, jobs, args.steps))
            print(f"{r + 1:>5} {jobs:>5} {worker:>16.1f} {server:>15.1f}")


if __name__ == "__main__":
    main()
