"""Builds the redis-py asyncio client for a ``RedisTarget``: standalone, Sentinel-managed master, or Cluster.

All three are built alike: no transparent retries, no socket timeout (blocking reads), quick connect
timeouts. A command that fails must surface, so that a restart or a failover is noticed (inbox gone, groups
gone, in-flight requests failed at once) instead of being papered over by a silent reconnect to a server
that lost the data. Cluster redirections (MOVED, ASK) are still followed: the key moved with its data.
"""

from __future__ import annotations

from typing import Any, TypeAlias

from redis.asyncio import BlockingConnectionPool, Redis
from redis.asyncio.cluster import ClusterNode, RedisCluster
from redis.asyncio.connection import AbstractConnection, SSLConnection, UnixDomainSocketConnection, parse_url
from redis.asyncio.retry import Retry
from redis.asyncio.sentinel import MasterNotFoundError, Sentinel, SentinelConnectionPool
from redis.backoff import NoBackoff
from redis.exceptions import ClusterDownError, RedisClusterException, RedisError, TryAgainError

from gateway.config.redis_target import RedisTarget, redis_url, resolve

__all__ = ["CLUSTER_UNAVAILABLE", "REDIS_ERRORS", "RedisClient", "connect", "pipelines_scripts", "redis_url",
           "resolve"]

RedisClient: TypeAlias = Redis | RedisCluster
"""What the dispatch talks to. Both run the same commands; every multi-key command and script stays in one
Cluster slot (hash tags, see keys.py), and pipelines carry no transaction across slots."""

REDIS_ERRORS: tuple[type[Exception], ...] = (RedisError, RedisClusterException, OSError)
"""What a failing Redis raises: the Cluster client's own errors (no reachable node, slot not covered) are not
RedisErrors, and a loop that let them through would die instead of waiting for the cluster to come back."""

CLUSTER_UNAVAILABLE: tuple[type[Exception], ...] = (ClusterDownError, TryAgainError)
"""Replies (ResponseErrors) that mean "the Cluster cannot serve this slot right now", not a bug: wait and retry."""



def pipelines_scripts(redis: RedisClient) -> bool:
    """Whether ``EVALSHA`` may go in a pipeline: redis-py refuses it in a Cluster pipeline (a call made there fails
    every time), so on a Cluster scripts are separate calls."""
    return not isinstance(redis, RedisCluster)


CONNECT_TIMEOUT_S = 2.0
POOL_WAIT_S = 10.0


class _BlockingSentinelPool(SentinelConnectionPool, BlockingConnectionPool):
    """The Sentinel pool (asks the Sentinels for the master when it connects) that waits for a free connection
    under load instead of failing, like the standalone pool."""

    async def get_master_address(self) -> tuple[str, int]:
        # SENTINEL GET-MASTER-ADDR-BY-NAME, as the Sentinel client guidelines say, names the promoted replica
        # as soon as it has been promoted. redis-py's default (SENTINEL MASTERS) names the old master until the
        # whole failover has ended (the other replicas reconfigured), which on a loaded machine was seen to
        # take 30 s more: all that time clients kept writing to a master about to be demoted. Should a
        # Sentinel name a server that is not a master, it answers READONLY, which the Sentinel connection
        # turns into a ConnectionError: callers retry, nothing is written there.
        for sentinel in self.sentinel_manager.sentinels:
            try:
                reply = await sentinel.execute_command("SENTINEL", "GET-MASTER-ADDR-BY-NAME", self.service_name)
            except REDIS_ERRORS:
                continue
            if reply:
                host, port = reply[0], reply[1]
                address = (host.decode() if isinstance(host, bytes) else str(host), int(port))
                break
        else:
            raise MasterNotFoundError(f"no Sentinel names a master for {self.service_name!r}")
        if self.master_address != address:
            self.master_address = address
            await self.disconnect(inuse_connections=False)  # idle connections to the old master
        return address

    async def release(self, connection: AbstractConnection) -> None:
        # redis-py's asyncio pool never checks that a returned connection still points at the current
        # master: one that was busy (a blocking read) during a failover would be reused against the old master.
        address = (getattr(connection, "host", None), getattr(connection, "port", None))
        if self.master_address is not None and address != tuple(self.master_address):
            await connection.disconnect()  # reconnects to the current master when next used
        await super().release(connection)


def connect(target: RedisTarget, max_connections: int = 64) -> RedisClient:
    """``max_connections``: per server. Blocking reads hold one connection each: one per worker lane, one per
    gateway inbox, one per cancel listener."""
    if target.mode == "cluster":
        return _cluster(target, max_connections)
    if target.mode == "sentinel":
        return _sentinel(target, max_connections)
    return _standalone(target, max_connections)


def _common() -> dict[str, Any]:
    # socket_timeout=None: XREAD BLOCK waits longer than any sensible socket timeout.
    return {"retry": Retry(NoBackoff(), 0), "socket_timeout": None, "socket_connect_timeout": CONNECT_TIMEOUT_S,
            "socket_keepalive": True}


def _auth(target: RedisTarget) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if target.username is not None:
        out["username"] = target.username
    if target.password is not None:
        out["password"] = target.password
    return out


def _tls(target: RedisTarget) -> dict[str, Any]:
    """redis-py's ``ssl_*`` arguments (without ``ssl`` itself: each client type says "TLS" its own way)."""
    out: dict[str, Any] = {"ssl_cert_reqs": "required" if target.tls_verify else "none",
                           "ssl_check_hostname": target.tls_verify}
    if target.tls_ca_file:
        out["ssl_ca_certs"] = target.tls_ca_file
    if target.tls_cert_file:
        out["ssl_certfile"] = target.tls_cert_file
        out["ssl_keyfile"] = target.tls_key_file
    return out


def _standalone(target: RedisTarget, max_connections: int) -> Redis:
    kwargs: dict[str, Any] = dict(parse_url(target.url))
    # Fields of [dispatch.redis] win over the URL (they are resolved into the target already).
    kwargs.update(_auth(target), db=target.db)
    if target.tls:
        kwargs.update(_tls(target), connection_class=SSLConnection)
    kwargs.update(_common())
    if kwargs.get("connection_class") is UnixDomainSocketConnection:
        kwargs.pop("socket_keepalive")  # a TCP option: the unix socket connection refuses it
    # A blocking pool: under load, commands wait for a free connection instead of failing.
    pool = BlockingConnectionPool(max_connections=max_connections, timeout=POOL_WAIT_S, **kwargs)
    client = Redis(connection_pool=pool, retry=Retry(NoBackoff(), 0))
    client.auto_close_connection_pool = True
    return client


def _sentinel(target: RedisTarget, max_connections: int) -> Redis:
    tls = {"ssl": True, **_tls(target)} if target.tls else {}
    sentinel_auth: dict[str, Any] = {}
    if target.sentinel_username is not None:
        sentinel_auth["username"] = target.sentinel_username
    if target.sentinel_password is not None:
        sentinel_auth["password"] = target.sentinel_password
    # Asking the Sentinels must be quick: one that is down is skipped, not waited for.
    sentinel_kwargs = {"socket_timeout": CONNECT_TIMEOUT_S, "socket_connect_timeout": CONNECT_TIMEOUT_S,
                       "retry": Retry(NoBackoff(), 0), **sentinel_auth, **tls}
    sentinel = Sentinel(list(target.nodes), sentinel_kwargs=sentinel_kwargs)  # type: ignore[no-untyped-call]
    pool = _BlockingSentinelPool(  # type: ignore[no-untyped-call]
        target.service_name, sentinel, is_master=True, max_connections=max_connections, timeout=POOL_WAIT_S,
        db=target.db, **_auth(target), **tls, **_common())
    client = Redis(connection_pool=pool, retry=Retry(NoBackoff(), 0))
    client.auto_close_connection_pool = True
    return client


def _cluster(target: RedisTarget, max_connections: int) -> RedisCluster:
    tls = {"ssl": True, **_tls(target)} if target.tls else {}
    # max_connections is per node and the async cluster client raises past it instead of waiting: leave room
    # for bursts of concurrent submits.
    return RedisCluster(startup_nodes=[ClusterNode(host, port) for host, port in target.nodes],
                        max_connections=max(max_connections, 1024), require_full_coverage=True,
                        **_auth(target), **tls, **_common())
