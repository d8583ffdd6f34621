"""Which backends may take traffic: the adapters' own health (active) and recent failures (passive)."""

from __future__ import annotations

import time
from collections.abc import Callable

import msgspec

from backends.protocol import Health, HealthState


class _Record(msgspec.Struct):
    health: Health = msgspec.field(default_factory=lambda: Health(HealthState.STARTING, "not checked yet"))
    consecutive_failures: int = 0
    ejected_until: float = 0.0
    ejections: int = 0


class HealthBoard:
    def __init__(
        self,
        backends: list[str],
        *,
        eject_after: int = 5,
        base_ejection_s: float = 5.0,
        max_ejection_s: float = 60.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._records = {name: _Record() for name in backends}
        self._eject_after = eject_after
        self._base = base_ejection_s
        self._max = max_ejection_s
        self._clock = clock

    def set_health(self, backend: str, health: Health) -> None:
        self._records[backend].health = health

    def health(self, backend: str) -> Health:
        return self._records[backend].health

    def available(self, backend: str) -> bool:
        r = self._records[backend]
        return r.health.state is HealthState.OK and self._clock() >= r.ejected_until

    def record_success(self, backend: str) -> None:
        r = self._records[backend]
        r.consecutive_failures = 0
        r.ejections = 0

    def record_failure(self, backend: str) -> None:
        r = self._records[backend]
        r.consecutive_failures += 1
        if r.consecutive_failures >= self._eject_after:
            # Backoff doubles per ejection in a row; a success after readmission resets it.
            r.ejected_until = self._clock() + min(self._max, self._base * 2 ** r.ejections)
            r.ejections += 1
            r.consecutive_failures = 0

    def any_available(self) -> bool:
        return any(self.available(b) for b in self._records)
