"""Where key records created through the admin API live: a TOML file (embedded dispatch) or Redis.

Keys from the config file (``[[auth.keys]]``, ``LOCKGATE_API_KEYS``) are not in a store: they are read-only
and work with either.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import time
import tomllib
from pathlib import Path
from typing import Any, Protocol

import msgspec

from dispatch.redis.connection import RedisClient
from gateway.tenants.records import KeyRecord


class StoreUnavailable(Exception):
    """The store cannot take new records (no keys file configured, Redis unreachable)."""


class KeyStore(Protocol):
    async def find(self, sha256: str) -> KeyRecord | None: ...

    async def get(self, key_id: str) -> KeyRecord | None: ...

    async def all(self) -> list[KeyRecord]: ...

    async def save(self, record: KeyRecord) -> None:
        """Create or replace (by id; the hash never changes)."""
        ...


class _KeysFile(msgspec.Struct):
    keys: list[KeyRecord] = msgspec.field(default_factory=list)


def _toml(value: Any) -> str:
    if isinstance(value, str):
        return '"' + value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'
    if isinstance(value, list | tuple):
        return "[" + ", ".join(_toml(v) for v in value) + "]"
    return str(value).lower() if isinstance(value, bool) else str(value)


class FileKeyStore:
    """Records in memory, written through to ``path`` (TOML, ``[[keys]]`` tables, replaced atomically)."""

    def __init__(self, path: str | None) -> None:
        self._path = Path(path) if path else None
        self._by_id: dict[str, KeyRecord] = {}
        self._lock = asyncio.Lock()
        if self._path is not None and self._path.exists():
            try:
                records = msgspec.convert(tomllib.loads(self._path.read_text()), _KeysFile).keys
            except (tomllib.TOMLDecodeError, msgspec.ValidationError) as exc:
                raise ValueError(f"keys file {self._path}: {exc}") from None
            self._by_id = {record.id: record for record in records}
        self._by_hash = {r.sha256: r for r in self._by_id.values()}

    async def find(self, sha256: str) -> KeyRecord | None:
        return self._by_hash.get(sha256)

    async def get(self, key_id: str) -> KeyRecord | None:
        return self._by_id.get(key_id)

    async def all(self) -> list[KeyRecord]:
        return list(self._by_id.values())

    async def save(self, record: KeyRecord) -> None:
        if self._path is None:
            raise StoreUnavailable("keys cannot be created or changed through the API without a keys file: set "
                                   "[tenants] keys_file in the config (or use the Redis dispatch)")
        async with self._lock:
            records = {**self._by_id, record.id: record}
            await asyncio.to_thread(self._write, list(records.values()))
            self._by_id = records
            self._by_hash = {r.sha256: r for r in records.values()}

    def _write(self, records: list[KeyRecord]) -> None:
        assert self._path is not None
        lines = ["# lockgate API keys (hashed), written by the admin API. Safe to edit while stopped."]
        for record in records:
            lines.append("\n[[keys]]")
            for field, value in msgspec.structs.asdict(record).items():
                if value is not None:
                    lines.append(f"{field} = {_toml(value)}")
        tmp = self._path.with_name(self._path.name + ".tmp")
        tmp.write_text("\n".join(lines) + "\n")
        os.replace(tmp, self._path)


def _b(value: bytes | str) -> bytes:
    return value if isinstance(value, bytes) else value.encode()


def _s(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


class RedisKeyStore:
    """``P:{keys}:sha:SHA`` -> msgpack record (the lookup), ``P:{keys}:id:ID`` -> SHA, ``P:{keys}:ids`` set of ids.
    One hash tag, one Cluster slot. TTLs: a revoked key is kept ``retention_s`` (for the admin API and its
    usage), an expiring one until its expiry plus that, any other ``idle_ttl_s``, renewed when it is used."""

    def __init__(self, redis: RedisClient, prefix: str, retention_s: int, idle_ttl_s: int) -> None:
        self._redis = redis
        self._prefix = f"{prefix}:{{keys}}"
        self._retention = retention_s
        self._idle = idle_ttl_s
        self._decoder = msgspec.msgpack.Decoder(KeyRecord)
        self._renewed: dict[str, float] = {}
        self._tasks: set[asyncio.Task[None]] = set()

    def _sha(self, sha256: str) -> str:
        return f"{self._prefix}:sha:{sha256}"

    def _id(self, key_id: str) -> str:
        return f"{self._prefix}:id:{key_id}"

    def _ttl(self, record: KeyRecord) -> int:
        if record.revoked_at is not None:
            return self._retention
        if record.expires_at is not None:
            return max(1, record.expires_at - int(time.time()) + self._retention)
        return self._idle

    async def find(self, sha256: str) -> KeyRecord | None:
        raw = await self._redis.get(self._sha(sha256))
        if raw is None:
            return None
        record = self._decoder.decode(_b(raw))
        if record.revoked_at is None and record.expires_at is None:
            self._renew(record)
        return record

    def _renew(self, record: KeyRecord) -> None:
        """At most once an hour per key and gateway, off the request's path."""
        now = time.monotonic()
        if now - self._renewed.get(record.id, -1e9) < 3600:
            return
        self._renewed[record.id] = now

        async def renew() -> None:
            with contextlib.suppress(Exception):
                async with self._redis.pipeline(transaction=False) as pipe:
                    pipe.expire(self._sha(record.sha256), self._idle)
                    pipe.expire(self._id(record.id), self._idle)
                    pipe.expire(f"{self._prefix}:ids", self._idle, gt=True)
                    await pipe.execute()

        task = asyncio.get_running_loop().create_task(renew())
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def get(self, key_id: str) -> KeyRecord | None:
        sha = await self._redis.get(self._id(key_id))
        return None if sha is None else await self._peek(_s(sha))

    async def _peek(self, sha256: str) -> KeyRecord | None:
        raw = await self._redis.get(self._sha(sha256))
        return None if raw is None else self._decoder.decode(_b(raw))

    async def all(self) -> list[KeyRecord]:
        ids = sorted(_s(m) for m in await self._redis.smembers(f"{self._prefix}:ids"))
        if not ids:
            return []
        shas = await self._redis.mget([self._id(i) for i in ids])
        gone = [i for i, s in zip(ids, shas, strict=True) if s is None]
        if gone:
            await self._redis.srem(f"{self._prefix}:ids", *gone)
        present = [_s(s) for s in shas if s is not None]
        raws = await self._redis.mget([self._sha(s) for s in present]) if present else []
        return [self._decoder.decode(_b(r)) for r in raws if r is not None]

    async def save(self, record: KeyRecord) -> None:
        ttl = self._ttl(record)
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.set(self._sha(record.sha256), msgspec.msgpack.encode(record), ex=ttl)
            pipe.set(self._id(record.id), record.sha256, ex=ttl)
            pipe.sadd(f"{self._prefix}:ids", record.id)
            # The index lives as long as the longest-lived record it lists.
            pipe.expire(f"{self._prefix}:ids", max(ttl, self._idle), gt=True)
            pipe.expire(f"{self._prefix}:ids", max(ttl, self._idle), nx=True)
            await pipe.execute()
