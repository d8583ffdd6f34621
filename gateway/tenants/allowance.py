"""One admitted request's standing with its key: the rate-limit headers, the completion-token lease that a
stream draws on (no Redis round trip per token: one per ``tenants.lease_tokens``), and the settlement when it
ends, however it ends (concurrency slot freed, unused tokens returned, usage recorded)."""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from typing import Any

from gateway.tenants.limits import Admission, RateLimiter, rate_headers
from gateway.tenants.records import KeyRecord
from gateway.tenants.usage import Usage
from routing.experiments import Timing


class Allowance:
    def __init__(self, key: KeyRecord, model: str, slot: str, prompt_estimate: int, admission: Admission | None,
                 limiter: RateLimiter, lease_size: int,
                 finish: Callable[[KeyRecord, str, int, Usage, str], Coroutine[Any, Any, None]]) -> None:
        self.key = key
        self.model = model
        self._slot = slot
        self._prompt = prompt_estimate
        self._admission = admission
        self._limiter = limiter
        self._lease_size = lease_size
        self._finish = finish
        self.lease = admission.lease if admission is not None else 0
        self.charged = 0
        """Completion tokens taken from the budget so far."""
        self.exhausted = False
        self._settled = False

    @property
    def headers(self) -> dict[str, str]:
        return rate_headers(self.key, self._admission.snapshot) if self._admission is not None else {}

    def take(self, tokens: int) -> bool:
        """Charge a chunk from the lease; False when the lease does not cover it (then ``extend``)."""
        if not self.key.tpm:
            return True
        if tokens <= self.lease:
            self.lease -= tokens
            self.charged += tokens
            return True
        return False

    async def extend(self, tokens: int) -> bool:
        """Charge a chunk the lease did not cover, with a new lease; False when the budget ran out (the chunk is
        charged anyway: a stream overruns by at most the chunk in hand, then it is cut)."""
        must = tokens - self.lease
        extension = await self._limiter.extend(self.key, must, self._lease_size)
        self.charged += tokens
        if extension.granted < must:
            self.lease = 0
            self.exhausted = True
            return False
        self.lease = extension.granted - must
        return True

    def settle(self, timing: Timing) -> Coroutine[Any, Any, None] | None:
        """What must still happen when the request ends (run it off the response path), once."""
        if self._settled:
            return None
        self._settled = True
        prompt = timing.prompt_tokens if timing.ok else self._prompt
        uncharged = max(0, timing.completion_tokens - self.charged)
        # Unused lease back; completion tokens not yet charged (non-streamed responses) and the prompt's real size
        # (the admission charged an estimate) taken now.
        refund = self.lease - uncharged - (prompt - self._prompt)
        outcome = "ok" if timing.ok else (timing.error or "error")
        usage = Usage(key_id=self.key.id, model=self.model, requests=1, prompt_tokens=prompt,
                      completion_tokens=timing.completion_tokens,
                      errors=0 if timing.ok or outcome == "cancelled" else 1)
        return self._finish(self.key, self._slot, refund if self.key.tpm else 0, usage, outcome)
