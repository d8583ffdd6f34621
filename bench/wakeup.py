"""What one cross-process hop costs on this machine when the processes on both ends were idle.

Every hop of the Redis dispatch (gateway -> Redis -> worker, worker -> Redis -> gateway) wakes a process
that was sleeping in epoll. On some VMs that wake-up costs far more than the work itself. This measures:

- ``pipe``: a round trip between two processes over a socketpair (one byte each way, blocking reads): the
  operating system's and hypervisor's floor, no Python event loop and no Redis;
- ``redis``: ``PING`` from an asyncio (uvloop) redis-py client, as lockgate's processes talk to Redis;
- ``hop``: one dispatch hop without lockgate's code: this process ``LPUSH``es its clock, another asyncio (uvloop)
  process idle in ``BLPOP`` on that list wakes and reads it (one way: push -> Redis -> the idle reader);

each after an idle gap of 0, 1, 10 and 50 ms. Run: ``.venv/bin/python bench/wakeup.py [--redis URL]``.

``--cpus A,B`` puts the two ends on those CPUs (pipe and hop; on the GPU machine: two of lockgate's pinned vCPUs);
``--pipe-only`` needs nothing but the standard library (the GPU machine before its wheels are installed);
``--dma-latency-us N`` holds ``/dev/cpu_dma_latency`` at N µs while it measures (root; 0 keeps idle CPUs out of
their deeper idle states, as tuned's latency-performance profile does), so one run shows what idle states cost.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import socket
import statistics
import struct
import time
from collections.abc import Iterator
from contextlib import contextmanager

GAPS_S = (0.0, 0.001, 0.01, 0.05)


@contextmanager
def dma_latency(us: int | None) -> Iterator[str]:
    """Hold the PM QoS CPU latency request while inside; yields what was done, for the report."""
    if us is None:
        yield "cpu_dma_latency untouched"
        return
    try:
        fd = os.open("/dev/cpu_dma_latency", os.O_WRONLY)
    except OSError as exc:
        yield f"cpu_dma_latency not held ({exc.strerror})"
        return
    try:
        os.write(fd, struct.pack("i", us))
        yield f"cpu_dma_latency held at {us} µs"
    finally:  # the request lasts while the file is open
        os.close(fd)


def pipe_round_trips(gap_s: float, n: int, cpus: tuple[int, int] | None) -> list[float]:
    ours, theirs = socket.socketpair()
    pid = os.fork()
    if pid == 0:  # the echo process: blocks in recv, as an idle server does
        if cpus:
            os.sched_setaffinity(0, {cpus[1]})
        ours.close()
        while (b := theirs.recv(1)) and b != b"q":
            theirs.sendall(b)
        os._exit(0)
    theirs.close()
    allowed = os.sched_getaffinity(0)
    if cpus:
        os.sched_setaffinity(0, {cpus[0]})
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
        os.sched_setaffinity(0, allowed)
    return out


async def redis_round_trips(url: str, gap_s: float, n: int) -> list[float]:
    import redis.asyncio as aioredis

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


def redis_hops(url: str, gap_s: float, n: int, cpus: tuple[int, int] | None = None) -> list[float]:
    """One-way push -> Redis -> idle reader latencies (seconds), the reader a forked uvloop process (on
    ``cpus[1]``, the pusher on ``cpus[0]``, when given)."""
    import redis

    key = f"lockgate:wakeup:{os.getpid()}:{time.monotonic_ns()}"
    ours, theirs = socket.socketpair()
    pid = os.fork()
    if pid == 0:  # the reader: idle in BLPOP between pushes, as a worker waits for its bell
        ours.close()
        if cpus:
            os.sched_setaffinity(0, {cpus[1]})
        code = 0
        try:
            import uvloop

            got = uvloop.run(_read_hops(url, key, n, theirs))
            theirs.sendall(struct.pack(f"{len(got)}d", *got))
        except BaseException:  # a forked child must never return into the parent's code
            code = 1
        finally:
            theirs.close()
            os._exit(code)
    theirs.close()
    allowed = os.sched_getaffinity(0)
    if cpus:
        os.sched_setaffinity(0, {cpus[0]})
    client = redis.Redis.from_url(url)
    try:
        if ours.recv(1) != b"r":  # the reader is connected and about to block in its first BLPOP
            raise RuntimeError("the hop reader did not start (is Redis reachable?)")
        for _ in range(n):
            if gap_s:
                time.sleep(gap_s)
            client.lpush(key, time.time_ns())
            if ours.recv(1) != b"k":  # the reader has it: the next push finds it idle again
                raise RuntimeError("the hop reader stopped")
        data = b""
        while len(data) < 8 * n and (chunk := ours.recv(65536)):
            data += chunk
        return list(struct.unpack(f"{len(data) // 8}d", data))
    finally:
        ours.close()
        os.waitpid(pid, 0)
        client.delete(key)
        client.close()
        os.sched_setaffinity(0, allowed)


async def _read_hops(url: str, key: str, n: int, parent: socket.socket) -> list[float]:
    import redis.asyncio as aioredis

    client = aioredis.Redis.from_url(url)
    out = []
    try:
        await client.ping()
        parent.sendall(b"r")
        for _ in range(n):
            reply = await client.blpop([key], timeout=10)
            if reply is None:
                break
            out.append((time.time_ns() - int(reply[1])) / 1e9)
            parent.sendall(b"k")
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
    parser.add_argument("--cpus", help="A,B: this end on CPU A, the echo process on CPU B (the pipe test)")
    parser.add_argument("--pipe-only", action="store_true", help="skip the Redis test (no packages needed)")
    parser.add_argument("--dma-latency-us", type=int, help="hold /dev/cpu_dma_latency at this while measuring")
    args = parser.parse_args()
    cpus: tuple[int, int] | None = None
    if args.cpus:
        a, sep, b = args.cpus.partition(",")
        if not sep or not a.isdigit() or not b.isdigit():
            parser.error("--cpus takes two CPUs: A,B")
        cpus = (int(a), int(b))
    with dma_latency(args.dma_latency_us) as held:
        print(f"round trip after an idle gap ({args.n} each; load average {os.getloadavg()[0]:.2f}, "
              f"{os.cpu_count()} cores; {held}; cpus {args.cpus or 'any'})")
        for gap in GAPS_S:
            print(f"pipe   gap {gap * 1000:4.0f} ms: {summary(pipe_round_trips(gap, args.n, cpus))}")
        if args.pipe_only:
            return
        import uvloop

        for gap in GAPS_S:
            rtts = uvloop.run(redis_round_trips(args.redis, gap, args.n))
            print(f"redis  gap {gap * 1000:4.0f} ms: {summary(rtts)}")
        for gap in GAPS_S:
            print(f"hop    gap {gap * 1000:4.0f} ms: {summary(redis_hops(args.redis, gap, args.n, cpus))}")


if __name__ == "__main__":
    main()
