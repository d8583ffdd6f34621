"""Tenancy for a gateway process: authenticate inference keys, admit requests against their key's limits, and
settle them (slot, tokens, usage, metrics). Redis-backed with Redis dispatch, in process otherwise."""

from __future__ import annotations

import asyncio
import logging
import math
import uuid
from collections.abc import Coroutine
from typing import Any

from opentelemetry.metrics import Meter
from opentelemetry.util.types import AttributeValue

from backends.events import Failed
from backends.request import GenerationRequest
from dispatch.redis.connection import REDIS_ERRORS, RedisClient
from gateway.config.schema import Config
from gateway.errors import APIError
from gateway.tenants.allowance import Allowance
from gateway.tenants.directory import KeyDirectory
from gateway.tenants.limits import Admission, RateLimiter, Verdict, go_duration, rate_headers
from gateway.tenants.memory import MemoryLimiter
from gateway.tenants.records import KeyRecord
from gateway.tenants.redis_limits import RedisLimiter
from gateway.tenants.store import FileKeyStore, KeyStore, RedisKeyStore
from gateway.tenants.usage import MemoryUsage, RedisUsage, TenantMetrics, Usage, UsageBook
from gateway.validation import model_not_found
from observability import semconv as sc
from observability.recorder import RequestRecorder

log = logging.getLogger("lockgate.tenants")

KEY_ID = "lockgate.key.id"
KEY_NAME = "lockgate.key.name"
DECISION = "lockgate.ratelimit.decision"
LIMIT = "lockgate.ratelimit.limit"


def prompt_estimate(request: GenerationRequest) -> int:
    """Prompt tokens charged at admission, before any engine has tokenized the prompt: about four bytes a
    token (whitespace-separated words when there are more). The engine's count replaces it at the end."""
    text = request.prompt_text()
    return max(1, len(text.split()), math.ceil(len(text.encode()) / 4))


class Tenancy:
    def __init__(self, config: Config, meter: Meter, environ: dict[str, str], redis: RedisClient | None) -> None:
        t = config.tenants
        self.config = t
        self.enabled = config.auth.enabled
        self._redis = redis
        store: KeyStore
        self.limiter: RateLimiter
        self.usage: UsageBook
        prefix = config.dispatch.key_prefix
        if redis is not None:
            store = RedisKeyStore(redis, prefix, t.usage_retention_days * 86400, t.key_ttl_days * 86400)
            self.limiter = RedisLimiter(redis, prefix, t.slot_ttl_s)
            self.usage = RedisUsage(redis, prefix, t.usage_retention_days)
        else:
            store = FileKeyStore(t.keys_file)
            self.limiter = MemoryLimiter()
            self.usage = MemoryUsage(t.usage_retention_days)
        self.directory = KeyDirectory.build(config.auth, environ, store, t.key_cache_s)
        self.metrics = TenantMetrics(meter)
        self._tasks: set[asyncio.Task[None]] = set()

    async def start(self) -> None:
        await self.limiter.start()

    async def close(self) -> None:
        if self._tasks:
            await asyncio.wait(self._tasks, timeout=5)
        await self.limiter.close()
        if self._redis is not None:
            await self._redis.aclose()

    def spawn(self, work: Coroutine[Any, Any, None]) -> None:
        task = asyncio.get_running_loop().create_task(work)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def authenticate(self, authorization: str | None) -> KeyRecord | None:
        """The inference key's record (None when auth is off); 401 otherwise. Admin keys are not in here."""
        if not self.enabled:
            return None
        try:
            return await self.directory.authenticate(authorization)
        except REDIS_ERRORS as exc:
            raise APIError(503, f"Keys cannot be checked right now (Redis: {type(exc).__name__}).",
                           code="dispatch_unavailable") from None

    async def admit(self, key: KeyRecord | None, request: GenerationRequest,
                    recorder: RequestRecorder) -> Allowance | None:
        """Check the key's model list and limits; 404 / 429 (after recording the failure) or an Allowance."""
        if key is None:
            return None
        span = recorder.span
        span.set_attributes({KEY_ID: key.id, KEY_NAME: key.name})
        if not key.allows(request.model):
            err = model_not_found(request.model)
            recorder.failed(Failed(type=err.type, message=err.message, status=err.status, code=err.code))
            raise err
        prompt = prompt_estimate(request)
        slot = uuid.uuid4().hex
        admission: Admission | None = None
        if key.limited:
            lease = min(self.config.lease_tokens, request.max_tokens * request.n) if key.tpm else 0
            try:
                admission = await self.limiter.admit(key, slot, prompt, lease)
            except asyncio.CancelledError:
                # The client left while the limits were checked; a slot taken meanwhile expires by itself
                # (tenants.slot_ttl_s) since nothing will settle it.
                recorder.cancelled()
                raise
            except REDIS_ERRORS as exc:
                err = APIError(503, f"Rate limits cannot be checked right now (Redis: {type(exc).__name__}).",
                               code="dispatch_unavailable")
                recorder.failed(Failed(type=err.type, message=err.message, status=err.status, code=err.code))
                raise err from None
            snap = admission.snapshot
            attrs: dict[str, AttributeValue] = {DECISION: "allowed" if admission.verdict is Verdict.OK else "refused",
                                                LIMIT: admission.verdict.limit}
            if key.rpm:
                attrs["lockgate.ratelimit.requests_remaining"] = max(0, math.floor(snap.requests_left))
            if key.tpm:
                attrs["lockgate.ratelimit.tokens_remaining"] = max(0, math.floor(snap.tokens_left))
            if key.max_concurrent:
                attrs["lockgate.ratelimit.in_flight"] = snap.in_flight
            span.set_attributes(attrs)
            if admission.verdict is not Verdict.OK:
                err = self._refusal(key, admission, prompt)
                recorder.failed(Failed(type=err.type, message=err.message, status=err.status, code=err.code))
                self.metrics.rate_limited.add(1, {KEY_ID: key.id, KEY_NAME: key.name, LIMIT: admission.verdict.limit,
                                                  sc.REQUEST_MODEL: request.model})
                self.spawn(self._add_usage(Usage(key_id=key.id, model=request.model, rate_limited=1)))
                raise err
        else:
            span.set_attributes({DECISION: "unlimited"})
        return Allowance(key, request.model, slot, prompt, admission, self.limiter, self.config.lease_tokens,
                         self._finish)

    @staticmethod
    def _refusal(key: KeyRecord, admission: Admission, prompt: int) -> APIError:
        verdict, wait = admission.verdict, admission.wait_s
        headers = rate_headers(key, admission.snapshot)
        if verdict is Verdict.TOO_LARGE:
            return APIError(429, f"Request too large for key {key.id} on tokens per min (TPM): Limit {key.tpm}, "
                                 f"Requested {prompt}. The prompt must be shorter, or the key's TPM higher.",
                            type="insufficient_quota", code="insufficient_quota", headers=headers)
        headers["Retry-After"] = str(max(1, math.ceil(wait)))
        if verdict is Verdict.REQUESTS:
            message = (f"Rate limit reached for key {key.id} on requests per min (RPM): Limit {key.rpm}, "
                       f"Requested 1. Please try again in {go_duration(wait)}.")
            kind = "requests"
        elif verdict is Verdict.TOKENS:
            left = max(0, math.floor(admission.snapshot.tokens_left))
            message = (f"Rate limit reached for key {key.id} on tokens per min (TPM): Limit {key.tpm}, "
                       f"Remaining {left}, Requested {prompt}. Please try again in {go_duration(wait)}.")
            kind = "tokens"
        else:
            message = (f"Too many concurrent requests for key {key.id}: Limit {key.max_concurrent}. "
                       "Please try again when one of them has finished.")
            kind = "requests"
        return APIError(429, message, type=kind, code="rate_limit_exceeded", headers=headers)

    async def _finish(self, key: KeyRecord, slot: str, refund: int, usage: Usage, outcome: str) -> None:
        attrs: dict[str, AttributeValue] = {KEY_ID: key.id, KEY_NAME: key.name, sc.REQUEST_MODEL: usage.model}
        self.metrics.requests.add(1, {**attrs, sc.OUTCOME: outcome})
        if usage.prompt_tokens:
            self.metrics.tokens.add(usage.prompt_tokens, {**attrs, sc.TOKEN_TYPE: "input"})
        if usage.completion_tokens:
            self.metrics.tokens.add(usage.completion_tokens, {**attrs, sc.TOKEN_TYPE: "output"})
        if key.limited:
            try:
                await self.limiter.settle(key, slot, refund)
            except REDIS_ERRORS as exc:
                # The slot expires by itself after tenants.slot_ttl_s; the tokens refill with time.
                log.warning("could not release the slot of key %s: %s", key.id, exc)
        await self._add_usage(usage)

    async def _add_usage(self, usage: Usage) -> None:
        try:
            await self.usage.add(usage)
        except REDIS_ERRORS as exc:
            log.warning("could not record usage of key %s: %s", usage.key_id, exc)

    def stream_cut(self, allowance: Allowance) -> APIError:
        """The error event that ends a stream whose key ran out of tokens."""
        key = allowance.key
        self.metrics.rate_limited.add(1, {KEY_ID: key.id, KEY_NAME: key.name, LIMIT: "tpm",
                                          sc.REQUEST_MODEL: allowance.model})
        self.metrics.cut.add(1, {KEY_ID: key.id, KEY_NAME: key.name, sc.REQUEST_MODEL: allowance.model})
        return APIError(429, f"Rate limit reached for key {key.id} on tokens per min (TPM): Limit {key.tpm}. The "
                             "stream was cut after this many tokens; retry the rest later.",
                        type="tokens", code="rate_limit_exceeded")
