"""The limits of ``limits.RateLimiter`` inside one process (embedded dispatch: one gateway, no Redis)."""

from __future__ import annotations

import time
from collections.abc import Callable

from gateway.tenants.limits import Admission, Extension, Snapshot, Verdict, refill, seconds_to
from gateway.tenants.records import KeyRecord


class _Buckets:
    def __init__(self, now: float) -> None:
        self.requests: float | None = None
        self.tokens: float | None = None
        self.at = now
        self.slots: set[str] = set()


class MemoryLimiter:
    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._keys: dict[str, _Buckets] = {}

    async def start(self) -> None:
        pass

    async def close(self) -> None:
        pass

    def _refilled(self, key: KeyRecord) -> tuple[_Buckets, float, float]:
        now = self._clock()
        b = self._keys.get(key.id)
        if b is None:
            b = self._keys[key.id] = _Buckets(now)
        elapsed = now - b.at
        b.at = now
        requests = refill(b.requests, elapsed, key.rpm) if key.rpm else 0.0
        tokens = refill(b.tokens, elapsed, key.tpm) if key.tpm else 0.0
        return b, requests, tokens

    def _store(self, key: KeyRecord, b: _Buckets, requests: float, tokens: float) -> None:
        b.requests = requests if key.rpm else None
        b.tokens = tokens if key.tpm else None
        if not b.slots and (not key.rpm or requests >= key.rpm) and (not key.tpm or tokens >= key.tpm):
            del self._keys[key.id]  # full buckets and no slot: the same as no entry

    async def admit(self, key: KeyRecord, slot: str, prompt_tokens: int, lease: int) -> Admission:
        b, requests, tokens = self._refilled(key)
        verdict, wait = Verdict.OK, 0.0
        if key.rpm and requests < 1:
            verdict, wait = Verdict.REQUESTS, seconds_to(requests, 1, key.rpm)
        elif key.tpm and prompt_tokens >= key.tpm:
            verdict = Verdict.TOO_LARGE
        elif key.tpm and tokens < prompt_tokens + 1:
            verdict, wait = Verdict.TOKENS, seconds_to(tokens, prompt_tokens + 1, key.tpm)
        elif key.max_concurrent and len(b.slots) >= key.max_concurrent:
            verdict = Verdict.CONCURRENCY
        granted = 0
        if verdict is Verdict.OK:
            requests -= 1 if key.rpm else 0
            if key.tpm:
                tokens -= prompt_tokens
                granted = int(min(max(tokens, 0.0), lease))
                tokens -= granted
            if key.max_concurrent:
                b.slots.add(slot)
        snapshot = Snapshot(requests, tokens, len(b.slots))
        self._store(key, b, requests, tokens)
        return Admission(verdict, snapshot, granted, wait)

    async def extend(self, key: KeyRecord, must: int, want: int) -> Extension:
        b, requests, tokens = self._refilled(key)
        if not key.tpm:
            return Extension(must + want, 0.0)
        granted = int(min(max(tokens, 0.0), must + want))
        tokens -= max(granted, must)
        self._store(key, b, requests, tokens)
        return Extension(granted, tokens)

    async def settle(self, key: KeyRecord, slot: str, refund: int) -> None:
        b, requests, tokens = self._refilled(key)
        b.slots.discard(slot)
        if key.tpm:
            tokens = min(float(key.tpm), tokens + refund)
        self._store(key, b, requests, tokens)
