"""Which Redis deployment to talk to: the URL and ``[dispatch.redis]`` resolved into one ``RedisTarget``.

Standalone (``redis://``, ``rediss://``, ``unix://``), Sentinel (``redis+sentinel://h1:p1,h2:p2/SERVICE/DB``)
or Cluster (``redis+cluster://h1:p1,h2:p2``); ``rediss+sentinel`` / ``rediss+cluster`` add TLS. Kept apart from
the client construction so that ``lockgate config check`` can validate it without connecting.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Literal
from urllib.parse import parse_qs, unquote, urlsplit

import msgspec

from gateway.config.schema import DispatchConfig

URL_ENV = "LOCKGATE_REDIS_URL"
PASSWORD_ENV = "LOCKGATE_REDIS_PASSWORD"
SENTINEL_PASSWORD_ENV = "LOCKGATE_REDIS_SENTINEL_PASSWORD"

Mode = Literal["standalone", "sentinel", "cluster"]
_SCHEMES: dict[str, tuple[Mode, bool]] = {
    "redis": ("standalone", False), "rediss": ("standalone", True), "unix": ("standalone", False),
    "redis+sentinel": ("sentinel", False), "rediss+sentinel": ("sentinel", True),
    "redis+cluster": ("cluster", False), "rediss+cluster": ("cluster", True),
}


class RedisTargetError(ValueError):
    """A Redis address that cannot work; ``field`` names the config field to blame."""

    def __init__(self, field: str, message: str) -> None:
        self.field = field
        super().__init__(f"{field}: {message}")


class RedisTarget(msgspec.Struct, frozen=True, kw_only=True):
    mode: Mode
    url: str = ""
    """Standalone only: the URL as given (redis-py parses its query options too)."""
    nodes: tuple[tuple[str, int], ...] = ()
    """Sentinel: the Sentinels. Cluster: the startup nodes."""
    service_name: str = ""
    db: int = 0
    username: str | None = None
    password: str | None = None
    sentinel_username: str | None = None
    sentinel_password: str | None = None
    tls: bool = False
    tls_ca_file: str | None = None
    tls_cert_file: str | None = None
    tls_key_file: str | None = None
    tls_verify: bool = True

    def describe(self) -> str:
        """For logs: where it points, never the password."""
        nodes = ",".join(f"{h}:{p}" for h, p in self.nodes)
        if self.mode == "sentinel":
            return f"sentinel {nodes} service {self.service_name} db {self.db}"
        if self.mode == "cluster":
            return f"cluster {nodes}"
        return f"standalone {_redact(self.url)}"


def redis_url(config: DispatchConfig, environ: Mapping[str, str] | None = None) -> str:
    env = os.environ if environ is None else environ
    return env.get(URL_ENV) or config.redis_url


def resolve(config: DispatchConfig, environ: Mapping[str, str] | None = None) -> RedisTarget:
    """The target from ``LOCKGATE_REDIS_URL`` or ``redis_url`` plus ``[dispatch.redis]``; raises RedisTargetError.

    An environment URL decides the mode and addresses on its own (an operator's override of the file);
    auth and TLS fields still apply to it."""
    env = os.environ if environ is None else environ
    r = config.redis
    env_url = env.get(URL_ENV)
    url = env_url or config.redis_url
    mode = "url" if env_url else r.mode
    if mode == "sentinel":
        if not r.sentinels:
            raise RedisTargetError("dispatch.redis.sentinels", 'mode = "sentinel" needs at least one host:port')
        base = RedisTarget(mode="sentinel", nodes=_nodes(r.sentinels, "dispatch.redis.sentinels"))
    elif mode == "cluster":
        if not r.cluster_nodes:
            raise RedisTargetError("dispatch.redis.cluster_nodes", 'mode = "cluster" needs at least one host:port')
        base = RedisTarget(mode="cluster", nodes=_nodes(r.cluster_nodes, "dispatch.redis.cluster_nodes"))
    else:
        field = URL_ENV if env_url else "dispatch.redis_url"
        base = parse_url(url, field)
        if mode == "standalone" and base.mode != "standalone":
            raise RedisTargetError(field, f'mode = "standalone" needs a redis:// or rediss:// URL, not {base.mode}')
    target = msgspec.structs.replace(
        base,
        service_name=r.service_name or base.service_name,
        db=r.db if r.db is not None else base.db,
        username=r.username if r.username is not None else base.username,
        password=env.get(PASSWORD_ENV) or (r.password if r.password is not None else base.password),
        sentinel_username=r.sentinel_username,
        sentinel_password=env.get(SENTINEL_PASSWORD_ENV) or r.sentinel_password,
        tls=r.tls if r.tls is not None else base.tls,
        tls_ca_file=r.tls_ca_file, tls_cert_file=r.tls_cert_file, tls_key_file=r.tls_key_file,
        tls_verify=r.tls_verify)
    if target.mode == "sentinel" and not target.service_name:
        raise RedisTargetError("dispatch.redis.service_name",
                               "Sentinel needs the master's name (in the URL path or service_name)")
    if target.mode == "cluster" and target.db != 0:
        raise RedisTargetError("dispatch.redis.db", "a Redis Cluster has only database 0")
    if (target.tls_cert_file is None) != (target.tls_key_file is None):
        raise RedisTargetError("dispatch.redis.tls_cert_file", "tls_cert_file and tls_key_file go together")
    return target


def parse_url(url: str, field: str = "dispatch.redis_url") -> RedisTarget:
    scheme, sep, rest = url.partition("://")
    if not sep or scheme.lower() not in _SCHEMES:
        raise RedisTargetError(field, f"unsupported URL {_redact(url)!r}; use one of "
                                      + ", ".join(f"{s}://" for s in _SCHEMES))
    mode, tls = _SCHEMES[scheme.lower()]
    if mode == "standalone":
        return _standalone(url, field)
    netloc, _, path = rest.partition("/")
    path, _, query = path.partition("?")
    if query:
        raise RedisTargetError(field, f"{scheme}:// URLs take no query options; use [dispatch.redis]")
    userinfo, at, hosts = netloc.rpartition("@")
    username, password = _userinfo(userinfo) if at else (None, None)
    nodes = _nodes(tuple(h for h in hosts.split(",") if h), field)
    if not nodes:
        raise RedisTargetError(field, f"{scheme}:// needs at least one host:port")
    parts = [p for p in path.split("/") if p]
    if mode == "cluster":
        if parts not in ([], ["0"]):
            raise RedisTargetError(field, "a redis+cluster:// URL has no path (a Cluster has only database 0)")
        return RedisTarget(mode="cluster", nodes=nodes, username=username, password=password, tls=tls)
    if len(parts) > 2 or (len(parts) == 2 and not parts[1].isdigit()):
        raise RedisTargetError(field, "a redis+sentinel:// URL's path is /SERVICE or /SERVICE/DB")
    return RedisTarget(mode="sentinel", nodes=nodes, service_name=unquote(parts[0]) if parts else "",
                       db=int(parts[1]) if len(parts) == 2 else 0, username=username, password=password, tls=tls)


def _standalone(url: str, field: str) -> RedisTarget:
    try:
        split = urlsplit(url)
        db_path = split.path.strip("/")
        if split.scheme != "unix" and db_path and not db_path.isdigit():
            raise ValueError(f"database {db_path!r} is not a number")
        _ = split.port  # raises on a bad port
    except ValueError as exc:
        raise RedisTargetError(field, f"bad URL {_redact(url)!r}: {exc}") from None
    username, password = _userinfo(split.netloc.rpartition("@")[0]) if "@" in split.netloc else (None, None)
    # unix:///path.sock?db=N: the path is the socket; redis:// takes ?db=N too (the path wins, as in redis-py)
    query_db = parse_qs(split.query).get("db", [""])[0]
    db = db_path if split.scheme != "unix" and db_path else query_db
    if db and not db.isdigit():
        raise RedisTargetError(field, f"bad URL {_redact(url)!r}: database {db!r} is not a number")
    return RedisTarget(mode="standalone", url=url, db=int(db) if db else 0,
                       username=username, password=password, tls=split.scheme == "rediss")


def _userinfo(userinfo: str) -> tuple[str | None, str | None]:
    user, colon, password = userinfo.partition(":")
    if not colon:  # redis://secret@host: a bare password (what redis-py does too)
        return None, unquote(user) or None
    return unquote(user) or None, unquote(password) or None


def _nodes(specs: tuple[str, ...], field: str) -> tuple[tuple[str, int], ...]:
    out = []
    for spec in specs:
        host, colon, port = spec.strip().rpartition(":")
        if not colon or not host or not port.isdigit() or not 0 < int(port) < 65536:
            raise RedisTargetError(field, f"{spec!r} is not host:port")
        out.append((host.strip("[]"), int(port)))
    return tuple(out)


def _redact(url: str) -> str:
    scheme, sep, rest = url.partition("://")
    _, at, tail = rest.rpartition("@")
    return f"{scheme}{sep}***@{tail}" if at else url
