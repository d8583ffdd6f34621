"""What one cross-process hop costs on this machine when the processes on both ends were idle.

Every hop of the Redis dispatch (gateway -> Redis -> worker, worker -> Redis -> gateway) wakes a process
that was sleeping in epoll. On some VMs that wake-up costs far more than the work itself. This measures:

- ``pipe``: a round trip between two processes over a socketpair (one byte each way, blocking reads): the
  operating system's and hypervisor's floor, no Python event loop and no Redis;
- ``redis``: ``PING`` from an asyncio (uvloop) redis-py client, as lockgate's processes talk to Redis;

each after an idle gap of 0, 1, 10 and 50 ms. Run: ``.venv/bin/python bench/wakeup.py [--redis URL]``.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import socket
import statistics
import time

import redis.asyncio as aioredis
import uvloop

GAPS_S = (0.0, 0.001, 0.01, 0.05)


def pipe_round_trips(gap_s: float, n: int) -> list[float]:
    ours, theirs = socket.socketpair()
    pid = os.fork()
    if pid == 0:  # the echo process: blocks in recv, as an idle server does
        ours.close()
        while (b := theirs.recv(1)) and b != b"q":
            theirs.sendall(b)
        os._exit(0)
    theirs.close()
    out = []
    try:
        for _ in range(n):
            if gap_s:
                time.sleep(gap_s)
            t = time.perf_counter()
            ours.sendall(b"x")
            ours.recv(1)
            out.append(time.perf_counter() - t)
    finally:
        ours.sendall(b"q")
        os.waitpid(pid, 0)
        ours.close()
    return out


async def redis_round_trips(url: str, gap_s: float, n: int) -> list[float]:
    client = aioredis.Redis.from_url(url)
    try:
        await client.ping()
        out = []
        for _ in range(n):
            if gap_s:
                await asyncio.sleep(gap_s)
            t = time.perf_counter()
            await client.ping()
            out.append(time.perf_counter() - t)
        return out
    finally:
        await client.aclose()


def summary(samples: list[float]) -> str:
    us = sorted(s * 1e6 for s in samples)
    return (f"p50 {statistics.median(us):7.0f} µs   p90 {us[int(len(us) * 0.9)]:7.0f} µs   "
            f"min {us[0]:6.0f} µs")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--redis", default=os.environ.get("LOCKGATE_REDIS_URL", "redis://127.0.0.1:6379/0"))
    parser.add_argument("-n", type=int, default=200, help="round trips per gap")
    args = parser.parse_args()
    print(f"round trip after an idle gap ({args.n} each; load average {os.getloadavg()[0]:.2f}, "
          f"{os.cpu_count()} cores)")
    for gap in GAPS_S:
        print(f"pipe   gap {gap * 1000:4.0f} ms: {summary(pipe_round_trips(gap, args.n))}")
    for gap in GAPS_S:
        print(f"redis  gap {gap * 1000:4.0f} ms: {summary(uvloop.run(redis_round_trips(args.redis, gap, args.n)))}")


if __name__ == "__main__":
    main()
