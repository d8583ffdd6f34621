"""Redis deployment modes: URLs and [dispatch.redis] resolved into one target; bad ones refused by config check."""

from __future__ import annotations

from pathlib import Path

import pytest
from redis.asyncio import Redis
from redis.asyncio.cluster import RedisCluster
from redis.asyncio.connection import SSLConnection
from redis.asyncio.sentinel import SentinelConnectionPool

from dispatch.redis.connection import connect
from gateway.config.loader import ConfigError, parse_config
from gateway.config.redis_target import RedisTarget, RedisTargetError, parse_url, resolve
from gateway.config.schema import DispatchConfig, RedisConnectionConfig
from tests.support.procs import lockgate

BASE = """
[models.m]
backends = [{ backend = "sim" }]
[backends.sim]
kind = "sim"
[dispatch]
kind = "redis"
"""


def test_standalone_urls() -> None:
    t = parse_url("redis://u:p%40ss@h:6380/3")
    assert (t.mode, t.db, t.username, t.password, t.tls) == ("standalone", 3, "u", "p@ss", False)
    assert parse_url("rediss://h:6380").tls
    assert parse_url("redis://:secret@h/0").password == "secret"
    assert parse_url("unix:///run/redis.sock?db=4").db == 4
    assert parse_url("redis://h:6379?db=2").db == 2


def test_sentinel_url() -> None:
    t = parse_url("redis+sentinel://:pw@s1:26379,s2:26380/mymaster/2")
    assert t.mode == "sentinel"
    assert t.nodes == (("s1", 26379), ("s2", 26380))
    assert (t.service_name, t.db, t.password, t.tls) == ("mymaster", 2, "pw", False)
    assert parse_url("rediss+sentinel://s1:26379/m").tls


def test_cluster_url() -> None:
    t = parse_url("rediss+cluster://u:p@n1:7000,n2:7001,[::1]:7002")
    assert t.mode == "cluster"
    assert t.nodes == (("n1", 7000), ("n2", 7001), ("::1", 7002))
    assert (t.username, t.password, t.tls) == ("u", "p", True)


@pytest.mark.parametrize(("url", "message"), [
    ("http://h:1", "unsupported URL"),
    ("redis+cluster://n1:7000/3", "only database 0"),
    ("redis+cluster://", "at least one host:port"),
    ("redis+sentinel://s1/m", "not host:port"),
    ("redis+sentinel://s1:26379/m/x", "/SERVICE/DB"),
    ("redis://h:6379/abc", "not a number"),
])
def test_bad_urls_are_refused(url: str, message: str) -> None:
    with pytest.raises(RedisTargetError, match=message):
        parse_url(url)


def test_explicit_fields_fill_in_and_override() -> None:
    config = DispatchConfig(redis_url="redis://:urlpw@h:6379/1", redis=RedisConnectionConfig(
        mode="sentinel", sentinels=("a:1", "b:2"), service_name="svc", db=4, password="cfgpw",
        sentinel_password="spw", tls=True, tls_verify=False))
    t = resolve(config, {})
    assert t.nodes == (("a", 1), ("b", 2))
    assert (t.mode, t.service_name, t.db, t.password, t.sentinel_password, t.tls) == (
        "sentinel", "svc", 4, "cfgpw", "spw", True)
    assert resolve(config, {"LOCKGATE_REDIS_PASSWORD": "envpw"}).password == "envpw"


def test_environment_url_decides_the_mode() -> None:
    config = DispatchConfig(redis=RedisConnectionConfig(mode="cluster", cluster_nodes=("n:7000",)))
    t = resolve(config, {"LOCKGATE_REDIS_URL": "redis://env:6379/5"})
    assert (t.mode, t.db) == ("standalone", 5)


def test_sentinel_without_a_service_is_refused() -> None:
    config = DispatchConfig(redis=RedisConnectionConfig(mode="sentinel", sentinels=("a:1",)))
    with pytest.raises(RedisTargetError, match="service_name"):
        resolve(config, {})


def test_config_check_names_the_field() -> None:
    with pytest.raises(ConfigError, match=r"dispatch\.redis_url: unsupported URL"):
        parse_config(BASE + 'redis_url = "memcached://h:1"\n')
    with pytest.raises(ConfigError, match=r"dispatch\.redis\.cluster_nodes"):
        parse_config(BASE + '[dispatch.redis]\nmode = "cluster"\n')
    with pytest.raises(ConfigError, match=r"dispatch\.redis\.db: a Redis Cluster has only database 0"):
        parse_config(BASE + 'redis_url = "redis+cluster://n:7000"\n[dispatch.redis]\ndb = 2\n')
    config = parse_config(BASE + 'redis_url = "redis+sentinel://s:26379/mymaster"\n'
                                 '[dispatch.redis]\nsentinel_password = "x"\n')
    assert config.dispatch.redis.sentinel_password == "x"


def test_backend_names_with_braces_are_refused() -> None:
    text = BASE.replace("backend = \"sim\"", "backend = \"a}b\"").replace("[backends.sim]", '[backends."a}b"]')
    with pytest.raises(ConfigError, match="cannot contain"):
        parse_config(text)


@pytest.mark.anyio
async def test_each_mode_builds_its_client_without_connecting() -> None:
    standalone = connect(RedisTarget(mode="standalone", url="rediss://u:p@h:6380/2", db=2, password="p",
                                     username="u", tls=True, tls_verify=False))
    assert isinstance(standalone, Redis)
    kwargs = standalone.connection_pool.connection_kwargs
    assert (kwargs["db"], kwargs["password"], kwargs["socket_timeout"]) == (2, "p", None)
    assert standalone.connection_pool.connection_class is SSLConnection
    sentinel = connect(RedisTarget(mode="sentinel", nodes=(("s", 26379),), service_name="m", db=1))
    assert isinstance(sentinel, Redis)
    assert isinstance(sentinel.connection_pool, SentinelConnectionPool)
    assert sentinel.connection_pool.service_name == "m"
    cluster = connect(RedisTarget(mode="cluster", nodes=(("n1", 7000), ("n2", 7001))))
    assert isinstance(cluster, RedisCluster)
    for client in (standalone, sentinel, cluster):
        await client.aclose()


def test_cli_refuses_a_bad_redis_url_with_a_clear_error() -> None:
    result = lockgate("worker", "--redis", "memcached://x:1")
    assert result.returncode == 2
    assert "unsupported URL 'memcached://x:1'" in result.stderr
    assert "redis+sentinel://" in result.stderr
    assert "Traceback" not in result.stderr


def test_describe_never_shows_a_password() -> None:
    assert parse_url("redis://u:secret@h:6379/0").describe() == "standalone redis://***@h:6379/0"
    assert parse_url("redis+sentinel://:secret@s:26379/m/1").describe() == "sentinel s:26379 service m db 1"
    assert parse_url("rediss+cluster://:secret@n:7000").describe() == "cluster n:7000"


def test_config_check_says_where_redis_is(tmp_path: Path) -> None:
    path = tmp_path / "c.toml"
    path.write_text(BASE + 'redis_url = "redis+sentinel://:secret@s1:26379,s2:26379/mymaster/2"\n')
    result = lockgate("config", "check", str(path))
    assert result.returncode == 0, result.stderr
    assert "dispatch redis (sentinel s1:26379,s2:26379 service mymaster db 2)" in result.stdout
    assert "secret" not in result.stdout
