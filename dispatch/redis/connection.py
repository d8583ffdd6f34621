"""Redis clients for the dispatch, and the URL from config or environment."""

from __future__ import annotations

import os
from collections.abc import Mapping

from redis.asyncio import BlockingConnectionPool, Redis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff

from gateway.config.schema import DispatchConfig

URL_ENV = "LOCKGATE_REDIS_URL"


def redis_url(config: DispatchConfig, environ: Mapping[str, str] | None = None) -> str:
    env = os.environ if environ is None else environ
    return env.get(URL_ENV) or config.redis_url


def connect(url: str, max_connections: int = 64) -> Redis:
    # A blocking pool: under load, commands wait for a free connection instead of failing (redis-py's default
    # pool raises past 100). Blocking reads hold one connection each: one per worker lane, one per inbox.
    # No transparent retries: a command that fails must surface, so that a Redis restart is noticed (inbox
    # gone, groups gone) instead of being papered over by a reconnect to an empty server.
    # socket_timeout=None: blocking reads (XREAD BLOCK) wait longer than any sensible socket timeout.
    pool = BlockingConnectionPool.from_url(
        url, max_connections=max_connections, timeout=10, retry=Retry(NoBackoff(), 0), socket_timeout=None,
        socket_connect_timeout=2, socket_keepalive=True)
    return Redis(connection_pool=pool, retry=Retry(NoBackoff(), 0))
