"""Per-key limits behind one Protocol: requests per minute, tokens per minute, concurrent requests.

Both implementations (``memory.py`` in process, ``redis_limits.py`` atomic in Redis across gateways) use token
buckets: a bucket holds up to the per-minute figure and refills continuously at that figure per minute, so
``reset`` (OpenAI's ``x-ratelimit-reset-*``) is the time until the bucket is full again. Prompt tokens are
taken at admission; completion tokens are taken in leases (``tenants.lease_tokens``) while a stream runs, and
what a request did not use goes back when it ends.
"""

from __future__ import annotations

import math
from enum import Enum
from typing import Protocol

import msgspec

from gateway.tenants.records import KeyRecord


class Verdict(Enum):
    OK = 0
    REQUESTS = 1
    """Out of requests this minute."""
    TOKENS = 2
    """Out of tokens this minute."""
    CONCURRENCY = 3
    """Too many requests in flight."""
    TOO_LARGE = 4
    """The prompt alone is more than the key's whole TPM: it can never be served."""

    @property
    def limit(self) -> str:
        """The ``lockgate.ratelimit.limit`` attribute value."""
        return {Verdict.OK: "none", Verdict.REQUESTS: "rpm", Verdict.TOKENS: "tpm",
                Verdict.CONCURRENCY: "concurrency", Verdict.TOO_LARGE: "tpm"}[self]


class Snapshot(msgspec.Struct, frozen=True):
    """The key's buckets after the decision (levels may be fractional; a TPM level below 0 is debt)."""

    requests_left: float = 0.0
    tokens_left: float = 0.0
    in_flight: int = 0


class Admission(msgspec.Struct, frozen=True):
    verdict: Verdict
    snapshot: Snapshot
    lease: int = 0
    """Completion tokens granted with the admission (0 without a TPM limit)."""
    wait_s: float = 0.0
    """Time until the refused request would fit (0 when unknown, e.g. concurrency)."""


class Extension(msgspec.Struct, frozen=True):
    granted: int
    """Tokens taken from the bucket; less than asked means the budget ran out."""
    tokens_left: float


class RateLimiter(Protocol):
    async def admit(self, key: KeyRecord, slot: str, prompt_tokens: int, lease: int) -> Admission:
        """All of the key's limits in one atomic step: refused (nothing taken) or admitted (one request, the
        prompt tokens and a lease of up to ``lease`` completion tokens taken; a concurrency slot held)."""
        ...

    async def extend(self, key: KeyRecord, must: int, want: int) -> Extension:
        """Take ``must`` tokens already produced plus up to ``want`` more. ``must`` is taken even past the budget
        (so a stream overruns by at most the chunk in hand), but then ``granted`` < ``must``."""
        ...

    async def settle(self, key: KeyRecord, slot: str, refund: int) -> None:
        """Free the concurrency slot and give back ``refund`` tokens (negative: take that many more)."""
        ...

    async def start(self) -> None: ...

    async def close(self) -> None: ...


def refill(level: float | None, elapsed_s: float, capacity: int) -> float:
    """A bucket's level after ``elapsed_s``: absent buckets are full."""
    if level is None:
        return float(capacity)
    return min(float(capacity), level + max(0.0, elapsed_s) * capacity / 60.0)


def seconds_to(level: float, target: float, capacity: int) -> float:
    """Time for a bucket at ``level`` to refill to ``target``."""
    return max(0.0, (target - level) * 60.0 / capacity)


def go_duration(seconds: float) -> str:
    """A duration as OpenAI's ``x-ratelimit-reset-*`` headers write it (Go's format): ``20ms``, ``1s``,
    ``1.5s``, ``6m0s``, ``1h2m3s``."""
    if seconds <= 0:
        return "0s"
    if seconds < 1:
        return f"{max(1, math.ceil(seconds * 1000))}ms"
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    text = f"{round(secs, 3):g}s"
    if hours or minutes:
        text = f"{int(minutes)}m" + text
    if hours:
        text = f"{int(hours)}h" + text
    return text


def rate_headers(key: KeyRecord, snap: Snapshot) -> dict[str, str]:
    """OpenAI's rate-limit headers for the key's RPM and TPM limits (none for a limit the key does not have)."""
    headers = {}
    if key.rpm:
        headers["x-ratelimit-limit-requests"] = str(key.rpm)
        headers["x-ratelimit-remaining-requests"] = str(max(0, math.floor(snap.requests_left)))
        headers["x-ratelimit-reset-requests"] = go_duration(seconds_to(snap.requests_left, key.rpm, key.rpm))
    if key.tpm:
        headers["x-ratelimit-limit-tokens"] = str(key.tpm)
        headers["x-ratelimit-remaining-tokens"] = str(max(0, math.floor(snap.tokens_left)))
        headers["x-ratelimit-reset-tokens"] = go_duration(seconds_to(snap.tokens_left, key.tpm, key.tpm))
    return headers
