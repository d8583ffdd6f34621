"""bench/wakeup.py's ``hop``: one push -> Redis -> idle reader latency per sample, against the real Redis."""

from __future__ import annotations

import os
import time

import redis

from bench.wakeup import redis_hops

REDIS_URL = os.environ.get("LOCKGATE_TEST_REDIS_URL", "redis://127.0.0.1:6379/9")


def test_each_push_is_read_once_by_the_idle_process_and_the_list_is_gone_after() -> None:
    before = set(redis.Redis.from_url(REDIS_URL).scan_iter("lockgate:wakeup:*"))
    started = time.perf_counter()
    hops = redis_hops(REDIS_URL, 0.002, 8)
    took = time.perf_counter() - started
    assert len(hops) == 8
    # One way through Redis on one host: above zero (the reader's clock is read after the push's), and within
    # the whole run's own duration.
    assert all(0 < h < took for h in hops), hops
    assert set(redis.Redis.from_url(REDIS_URL).scan_iter("lockgate:wakeup:*")) == before
    # Pinned to CPUs: this process gets its own affinity back.
    mine = os.sched_getaffinity(0)
    cpu = min(mine)
    assert len(redis_hops(REDIS_URL, 0.0, 3, (cpu, cpu))) == 3
    assert os.sched_getaffinity(0) == mine
