"""Submits that arrive together share trips to Redis (dispatch/redis/submits.py), against the real test Redis."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from opentelemetry.sdk.metrics.export import HistogramDataPoint, InMemoryMetricReader
from redis.asyncio import Redis

from dispatch.redis.keys import GROUP, Keys
from dispatch.redis.scripts import Scripts
from dispatch.redis.submits import SubmitBatcher
from gateway.config.schema import TelemetryConfig
from observability.telemetry import Telemetry


def _batcher(redis: Redis, scripts: Scripts) -> tuple[SubmitBatcher, Telemetry, InMemoryMetricReader]:
    reader = InMemoryMetricReader()
    telemetry = Telemetry.build(TelemetryConfig(), metric_readers=[reader])
    return SubmitBatcher(redis, scripts, telemetry), telemetry, reader


def _trips(telemetry: Telemetry, reader: InMemoryMetricReader) -> tuple[int, float]:
    """(trips, jobs) from lockgate.dispatch.submit_batch."""
    telemetry.buffer.flush()
    data = reader.get_metrics_data()
    assert data is not None
    points = [p for rm in data.resource_metrics for sm in rm.scope_metrics for m in sm.metrics
              if m.name == "lockgate.dispatch.submit_batch" for p in m.data.data_points
              if isinstance(p, HistogramDataPoint)]
    return sum(p.count for p in points), float(sum(p.sum for p in points))


def _args(keys: Keys, name: str, depth: int = 100) -> tuple[list[str], list[Any]]:
    streams = keys.job_streams("b")
    return keys.queue_keys("b"), [streams.index(keys.jobs("b", 0)) + 1, depth, name.encode(), 60, GROUP, name, "t"]


async def _queued(scripts: Scripts, keys: Keys) -> list[bytes]:
    """The payloads a worker takes, in the order it gets them (one tenant: the order they were admitted)."""
    rows: list[list[Any]] = await scripts.take(keys=keys.queue_keys("b"), args=[GROUP, "w1", 50, 60])
    return [r[2][1] for r in rows]


@pytest.mark.anyio
async def test_a_wave_of_submits_takes_two_trips_in_arrival_order(env: tuple[Redis, Scripts, Keys]) -> None:
    redis, scripts, keys = env
    batcher, telemetry, reader = _batcher(redis, scripts)
    names = [f"j{i}" for i in range(12)]
    replies = await asyncio.gather(*(batcher.submit(*_args(keys, n)) for n in names))
    assert [r[0] for r in replies] == [1] * 12
    # The first went alone, at once; the other eleven, which arrived while it was out, went in one pipeline.
    assert _trips(telemetry, reader) == (2, 12.0)
    assert await _queued(scripts, keys) == [n.encode() for n in names]
    # A quiet moment again: the next one goes alone.
    assert (await batcher.submit(*_args(keys, "later")))[0] == 1
    assert _trips(telemetry, reader) == (3, 13.0)
    await batcher.close()


@pytest.mark.anyio
async def test_admission_counts_each_job_of_a_shared_trip_in_turn(env: tuple[Redis, Scripts, Keys]) -> None:
    redis, scripts, keys = env
    batcher, _, _ = _batcher(redis, scripts)
    replies = await asyncio.gather(*(batcher.submit(*_args(keys, f"j{i}", depth=5)) for i in range(8)))
    assert [r[0] for r in replies] == [1] * 5 + [0] * 3
    assert [int(r[1]) for r in replies[5:]] == [5, 5, 5]
    assert await _queued(scripts, keys) == [f"j{i}".encode() for i in range(5)]


@pytest.mark.anyio
async def test_a_lost_script_cache_is_loaded_again_for_a_shared_trip(env: tuple[Redis, Scripts, Keys]) -> None:
    redis, scripts, keys = env
    batcher, _, _ = _batcher(redis, scripts)
    real = scripts.submit.sha

    async def first() -> list[Any]:
        reply = await batcher.submit(*_args(keys, "j0"))
        # The shared trip starts on the loop's next turn, with a SHA Redis does not know: as after a restart.
        scripts.submit.sha = "0" * 40
        return reply

    replies = await asyncio.gather(first(), *(batcher.submit(*_args(keys, f"j{i}")) for i in range(1, 4)))
    assert [r[0] for r in replies] == [1] * 4
    assert scripts.submit.sha == real  # loaded again by the Script object
    assert await _queued(scripts, keys) == [f"j{i}".encode() for i in range(4)]


@pytest.mark.anyio
async def test_a_caller_that_goes_away_before_its_trip_is_never_sent(env: tuple[Redis, Scripts, Keys]) -> None:
    redis, scripts, keys = env
    batcher, _, _ = _batcher(redis, scripts)
    first = asyncio.create_task(batcher.submit(*_args(keys, "j0")))
    await asyncio.sleep(0)  # j0 is out
    gone = asyncio.create_task(batcher.submit(*_args(keys, "gone")))
    kept = asyncio.create_task(batcher.submit(*_args(keys, "kept")))
    await asyncio.sleep(0)
    gone.cancel()
    assert (await first)[0] == 1
    assert (await kept)[0] == 1
    with pytest.raises(asyncio.CancelledError):
        await gone
    assert await _queued(scripts, keys) == [b"j0", b"kept"]


@pytest.mark.anyio
async def test_a_failed_trip_fails_every_submit_in_it(env: tuple[Redis, Scripts, Keys]) -> None:
    redis, scripts, keys = env
    batcher, _, _ = _batcher(redis, scripts)
    broken = Redis.from_url("redis://127.0.0.1:1/0")  # nothing listens there
    batcher._redis = broken  # the shared trip's connection; the first call goes through its own Script
    replies = await asyncio.gather(*(batcher.submit(*_args(keys, f"j{i}")) for i in range(3)),
                                   return_exceptions=True)
    assert replies[0][0] == 1  # type: ignore[index]
    assert all(isinstance(r, ConnectionError | OSError) or "Connect" in type(r).__name__ for r in replies[1:])
    await broken.aclose()
