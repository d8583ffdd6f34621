"""Every inference key: the config's (read-only) and the stored ones (admin API), looked up by SHA-256 through a
short cache. The cache's lifetime, ``tenants.key_cache_s``, is the revocation delay: a change made through
another gateway is seen here within it; this gateway's own changes drop its cache entry at once."""

from __future__ import annotations

import time
from collections.abc import Callable

import msgspec

from gateway.auth import ENV_KEYS, bearer, hash_key, missing_key, wrong_key
from gateway.config.schema import AuthConfig
from gateway.errors import APIError
from gateway.tenants.records import KeyCreate, KeyRecord, KeyUpdate
from gateway.tenants.secrets import new_key_id, new_secret
from gateway.tenants.store import KeyStore

MAX_CACHED = 10_000


def not_found(key_id: str) -> APIError:
    return APIError(404, f"No key with id {key_id!r}.", param="key_id", code="key_not_found")


class KeyDirectory:
    def __init__(self, fixed: list[KeyRecord], store: KeyStore, cache_s: float,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._fixed = {r.sha256: r for r in fixed}
        self._fixed_ids = {r.id: r for r in fixed}
        self.store = store
        self.cache_s = cache_s
        self._clock = clock
        self._cache: dict[str, tuple[float, KeyRecord | None]] = {}

    @classmethod
    def build(cls, auth: AuthConfig, environ: dict[str, str], store: KeyStore, cache_s: float) -> KeyDirectory:
        fixed = [KeyRecord.from_config(k) for k in auth.keys]
        plain = [k.strip() for k in environ.get(ENV_KEYS, "").split(",")]
        fixed += [KeyRecord(id=f"env-{i}", name=f"env-{i}", sha256=hash_key(k), source="env")
                  for i, k in enumerate(plain) if k]
        return cls(fixed, store, cache_s)

    async def lookup(self, secret: str) -> KeyRecord | None:
        # Looked up by the secret's SHA-256: timing reveals nothing about the secret, only about its hash.
        sha = hash_key(secret)
        fixed = self._fixed.get(sha)
        if fixed is not None:
            return fixed
        now = self._clock()
        hit = self._cache.get(sha)
        if hit is not None and hit[0] > now:
            return hit[1]
        record = await self.store.find(sha)
        if self.cache_s > 0:
            if len(self._cache) >= MAX_CACHED:
                self._cache = {k: v for k, v in self._cache.items() if v[0] > now}
                if len(self._cache) >= MAX_CACHED:
                    self._cache.clear()
            self._cache[sha] = (now + self.cache_s, record)
        return record

    async def authenticate(self, authorization: str | None) -> KeyRecord:
        secret = bearer(authorization)
        if secret is None:
            raise missing_key()
        record = await self.lookup(secret)
        if record is None:
            raise wrong_key()
        refusal = record.refusal()
        if refusal is not None:
            raise wrong_key(f"This API key has {'been revoked' if refusal == 'revoked' else 'expired'}.")
        return record

    def _forget(self, record: KeyRecord) -> None:
        self._cache.pop(record.sha256, None)

    async def get(self, key_id: str) -> KeyRecord:
        record = self._fixed_ids.get(key_id) or await self.store.get(key_id)
        if record is None:
            raise not_found(key_id)
        return record

    async def all(self) -> list[KeyRecord]:
        stored = await self.store.all()
        return [*self._fixed_ids.values(), *sorted(stored, key=lambda r: (r.created_at, r.id))]

    async def create(self, request: KeyCreate) -> tuple[KeyRecord, str]:
        secret = new_secret()
        record = KeyRecord(id=new_key_id(), name=request.name, sha256=hash_key(secret), models=request.models,
                           priority=request.priority, rpm=request.rpm, tpm=request.tpm,
                           max_concurrent=request.max_concurrent, expires_at=request.expires_at,
                           created_at=int(time.time()))
        await self.store.save(record)
        self._forget(record)
        return record, secret

    async def _stored(self, key_id: str) -> KeyRecord:
        if key_id in self._fixed_ids:
            raise APIError(409, f"Key {key_id!r} is defined in the config (or LOCKGATE_API_KEYS); change it there.",
                           param="key_id", code="key_read_only")
        return await self.get(key_id)

    async def update(self, key_id: str, update: KeyUpdate) -> KeyRecord:
        record = update.apply(await self._stored(key_id))
        await self.store.save(record)
        self._forget(record)
        return record

    async def revoke(self, key_id: str) -> KeyRecord:
        record = await self._stored(key_id)
        if record.revoked_at is None:
            record = msgspec.structs.replace(record, revoked_at=int(time.time()))
            await self.store.save(record)
        self._forget(record)
        return record
