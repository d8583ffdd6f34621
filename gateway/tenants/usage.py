"""Usage per key and model: requests, prompt and completion tokens, errors, rate-limited refusals.

Every request's usage is exported as metrics at once (``TenantMetrics``: key id and name as labels, never a
secret or hash) and added to per-day buckets readable from the admin API: in Redis with Redis dispatch
(``P:usage:{ID}:YYYYMMDD`` hashes, ``model|field`` -> count, expiring after ``tenants.usage_retention_days``),
in memory otherwise (lost on restart; the metrics are the durable record there).
"""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from typing import Protocol

import msgspec
from opentelemetry.metrics import Counter, Meter

from dispatch.redis.connection import RedisClient

FIELDS = ("requests", "prompt_tokens", "completion_tokens", "errors", "rate_limited")


class Usage(msgspec.Struct, frozen=True):
    key_id: str
    model: str
    requests: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    errors: int = 0
    rate_limited: int = 0


class UsageRow(msgspec.Struct, kw_only=True):
    date: str
    model: str
    requests: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    errors: int = 0
    rate_limited: int = 0


class UsageReport(msgspec.Struct, kw_only=True):
    """GET /v1/lockgate/keys/{id}/usage: per day and model, newest first, and totals per model."""

    object: str = "lockgate.usage"
    key_id: str
    days: int
    data: list[UsageRow]
    totals: list[UsageRow]


def day(ts: float | None = None) -> str:
    moment = dt.datetime.now(dt.UTC) if ts is None else dt.datetime.fromtimestamp(ts, dt.UTC)
    return moment.strftime("%Y%m%d")


def last_days(days: int) -> list[str]:
    today = dt.datetime.now(dt.UTC)
    return [(today - dt.timedelta(days=i)).strftime("%Y%m%d") for i in range(days)]


def report(key_id: str, days: int, buckets: list[tuple[str, dict[tuple[str, str], int]]]) -> UsageReport:
    rows, totals = [], defaultdict(lambda: defaultdict(int))  # type: ignore[var-annotated]
    for date, counts in buckets:
        per_model: dict[str, dict[str, int]] = defaultdict(dict)
        for (model, field), n in counts.items():
            if field in FIELDS:
                per_model[model][field] = n
                totals[model][field] += n
        iso = f"{date[:4]}-{date[4:6]}-{date[6:]}"
        rows += [UsageRow(date=iso, model=m, **f) for m, f in sorted(per_model.items())]
    return UsageReport(key_id=key_id, days=days, data=rows,
                       totals=[UsageRow(date="total", model=m, **f) for m, f in sorted(totals.items())])


class UsageBook(Protocol):
    async def add(self, usage: Usage) -> None: ...

    async def read(self, key_id: str, days: int) -> UsageReport: ...


class MemoryUsage:
    def __init__(self, retention_days: int) -> None:
        self._retention = retention_days
        self._days: dict[str, dict[str, dict[tuple[str, str], int]]] = {}

    async def add(self, usage: Usage) -> None:
        today = day()
        if today not in self._days:
            keep = set(last_days(self._retention))
            self._days = {d: v for d, v in self._days.items() if d in keep}
        counts = self._days.setdefault(today, {}).setdefault(usage.key_id, {})
        for field in FIELDS:
            n = getattr(usage, field)
            if n:
                counts[(usage.model, field)] = counts.get((usage.model, field), 0) + n

    async def read(self, key_id: str, days: int) -> UsageReport:
        return report(key_id, days, [(d, self._days.get(d, {}).get(key_id, {})) for d in last_days(days)])


class RedisUsage:
    def __init__(self, redis: RedisClient, prefix: str, retention_days: int) -> None:
        self._redis = redis
        self._prefix = prefix
        self._ttl = retention_days * 86400

    def _key(self, key_id: str, date: str) -> str:
        return f"{self._prefix}:usage:{{{key_id}}}:{date}"

    async def add(self, usage: Usage) -> None:
        key = self._key(usage.key_id, day())
        async with self._redis.pipeline(transaction=False) as pipe:
            for field in FIELDS:
                n = getattr(usage, field)
                if n:
                    pipe.hincrby(key, f"{usage.model}|{field}", n)
            pipe.expire(key, self._ttl)
            await pipe.execute()

    async def read(self, key_id: str, days: int) -> UsageReport:
        dates = last_days(days)
        async with self._redis.pipeline(transaction=False) as pipe:
            for date in dates:
                pipe.hgetall(self._key(key_id, date))
            replies = await pipe.execute()
        buckets = []
        for date, raw in zip(dates, replies, strict=True):
            counts = {}
            for name, n in (raw or {}).items():
                model, _, field = (name.decode() if isinstance(name, bytes) else str(name)).rpartition("|")
                counts[(model, field)] = int(n)
            buckets.append((date, counts))
        return report(key_id, days, buckets)


class TenantMetrics:
    """Counters by key (id and name) and model; refusals by limit."""

    def __init__(self, meter: Meter) -> None:
        self.requests: Counter = meter.create_counter(
            "lockgate.tenant.requests", unit="{request}", description="Admitted requests per key and model, by outcome")
        self.tokens: Counter = meter.create_counter(
            "lockgate.tenant.tokens", unit="{token}", description="Tokens per key and model, by type (input/output)")
        self.rate_limited: Counter = meter.create_counter(
            "lockgate.ratelimit.rejected", unit="{request}",
            description="Requests refused by a key's limits, by limit (rpm, tpm, concurrency)")
        self.cut: Counter = meter.create_counter(
            "lockgate.ratelimit.streams_cut", unit="{request}",
            description="Streams ended early because the key's TPM budget ran out")
