"""The dispatch tests' shared fixtures."""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator

import pytest
from redis.asyncio import Redis

from dispatch.redis.keys import GROUP, Keys
from dispatch.redis.scripts import Scripts

URL = os.environ.get("LOCKGATE_TEST_REDIS_URL", "redis://127.0.0.1:6379/9")


@pytest.fixture
async def env() -> AsyncIterator[tuple[Redis, Scripts, Keys]]:
    """The test Redis, the scripts registered on it, and keys under a prefix of this test's own (deleted after)."""
    redis = Redis.from_url(URL)
    keys = Keys(f"lgu{uuid.uuid4().hex[:8]}", 2)
    for stream in keys.job_streams("b"):
        await redis.xgroup_create(stream, GROUP, id="0", mkstream=True)
    yield redis, Scripts(redis), keys
    found = [k async for k in redis.scan_iter(match=f"{keys.prefix}:*")]
    if found:
        await redis.delete(*found)
    await redis.aclose()
