"""A Redis dispatch in this process for the tests: one gateway and a few workers of backend ``sim`` (the simulated
engine, in process) on the test Redis, under the config's own key prefix."""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass

from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from redis.asyncio import Redis

from backends.sim.engine import SimBackend
from backends.sim.options import SimOptions
from dispatch.redis import RedisDispatcher, RedisWorker
from dispatch.redis.keys import Keys
from gateway.config.redis_target import parse_url
from gateway.config.schema import DispatchConfig, TelemetryConfig
from observability.semconv import DISPATCH_WAKE
from observability.telemetry import Telemetry

URL = os.environ.get("LOCKGATE_TEST_REDIS_URL", "redis://127.0.0.1:6379/9")


@dataclass
class Rig:
    gateway: RedisDispatcher
    workers: list[RedisWorker]
    telemetry: Telemetry
    reader: InMemoryMetricReader
    client: Redis
    keys: Keys

    def wakes(self) -> dict[str, int]:
        """The gateway's ``lockgate.dispatch.wakes`` so far, by ``lockgate.dispatch.wake``."""
        self.telemetry.buffer.flush()
        data = self.reader.get_metrics_data()
        assert data is not None
        return {str(p.attributes[DISPATCH_WAKE]): int(p.value)  # type: ignore[index, union-attr]
                for rm in data.resource_metrics for sm in rm.scope_metrics for m in sm.metrics
                if m.name == "lockgate.dispatch.wakes" for p in m.data.data_points}


async def clear_prefix(client: Redis, prefix: str) -> list[bytes]:
    """Delete every key under ``prefix``; return those that had no TTL (each must have one)."""
    found = [k async for k in client.scan_iter(match=f"{prefix}:*")]
    without_ttl = [k for k in found if await client.ttl(k) == -1]
    if found:
        await client.delete(*found)
    return without_ttl


@asynccontextmanager
async def rig(config: DispatchConfig, sim: SimOptions, *, workers: int = 3, stagger_s: float = 0.0,
              max_queue_depth: int = 64) -> AsyncIterator[Rig]:
    """Started gateway and ``workers`` workers (``stagger_s`` apart: each blocks in turn, so Redis's first-come
    order among them is known; with ``dispatch.local`` the first is the gateway's own). On the way out, all stop;
    then every key of the prefix must have a TTL, and no
    worker may be left on the idle stack or in the room set (stopping workers leave both); the keys are deleted."""
    target = parse_url(URL)
    reader = InMemoryMetricReader()
    telemetry = Telemetry.build(TelemetryConfig(), metric_readers=[reader])
    backend = SimBackend("sim", sim)
    await backend.start()
    started = [RedisWorker({"sim": backend}, config, target=target, telemetry=telemetry) for _ in range(workers)]
    # With dispatch.local the first worker is the gateway's own, as in one `lockgate serve` process.
    gateway = RedisDispatcher(config, target=target, backends=["sim"], telemetry=telemetry,
                              max_queue_depth=max_queue_depth, retry_after_s=1, local=started[0] if started else None)
    client = Redis.from_url(URL)
    keys = Keys(config.key_prefix, config.priority_bands)
    await gateway.start()
    try:
        for w in started:
            await w.start()
            if stagger_s:
                await asyncio.sleep(stagger_s)
        yield Rig(gateway, started, telemetry, reader, client, keys)
    finally:
        for w in started:
            await w.stop()
        await gateway.close()
        await backend.close()
        on_stack = await client.lrange(keys.idle("sim"), 0, -1)
        in_room = await client.zrange(keys.room("sim"), 0, -1)
        without_ttl = await clear_prefix(client, config.key_prefix)
        await client.aclose()
        assert without_ttl == []
        assert on_stack == []
        assert in_room == []
