"""Which backends may take traffic: the adapters' own health (active) and recent outcomes (passive).

A backend is ejected after ``eject_after`` consecutive failures or when its error rate over the last
``window`` outcomes reaches ``error_rate``. The ejection lasts ``base_ejection_s``, doubling per ejection in
a row up to ``max_ejection_s``; after it the backend is *probing*: it gets no traffic until an active health
check succeeds, which readmits it.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable
from enum import StrEnum

import msgspec

from backends.protocol import Health, HealthState


class Admission(StrEnum):
    ADMITTED = "admitted"
    EJECTED = "ejected"
    PROBING = "probing"


class _Record(msgspec.Struct):
    health: Health = msgspec.field(default_factory=lambda: Health(HealthState.STARTING, "not checked yet"))
    consecutive_failures: int = 0
    outcomes: deque[bool] = msgspec.field(default_factory=deque)
    ejected_until: float = 0.0
    ejections: int = 0
    admission: Admission = Admission.ADMITTED


class HealthBoard:
    def __init__(
        self,
        backends: list[str],
        *,
        eject_after: int = 5,
        error_rate: float = 0.5,
        window: int = 20,
        base_ejection_s: float = 5.0,
        max_ejection_s: float = 60.0,
        clock: Callable[[], float] = time.monotonic,
        on_eject: Callable[[str, float], None] | None = None,
    ) -> None:
        """``on_eject(backend, seconds)`` is called on each ejection (metrics, logs)."""
        self._records = {name: _Record() for name in backends}
        self._on_eject = on_eject
        self._eject_after = eject_after
        self._error_rate = error_rate
        self._window = window
        self._base = base_ejection_s
        self._max = max_ejection_s
        self._clock = clock

    def set_health(self, backend: str, health: Health) -> None:
        """An active check's result; a success also readmits a probing backend."""
        r = self._records[backend]
        r.health = health
        if health.ok and r.admission is Admission.EJECTED and self._clock() >= r.ejected_until:
            r.admission = Admission.PROBING
        if health.ok and r.admission is Admission.PROBING:
            r.admission = Admission.ADMITTED
            r.outcomes.clear()

    def health(self, backend: str) -> Health:
        return self._records[backend].health

    def admission(self, backend: str) -> Admission:
        r = self._records[backend]
        if r.admission is Admission.EJECTED and self._clock() >= r.ejected_until:
            r.admission = Admission.PROBING
        return r.admission

    def available(self, backend: str) -> bool:
        return self._records[backend].health.ok and self.admission(backend) is Admission.ADMITTED

    def record_success(self, backend: str) -> None:
        r = self._records[backend]
        r.consecutive_failures = 0
        r.ejections = 0
        self._push(r, True)

    def record_failure(self, backend: str) -> None:
        r = self._records[backend]
        r.consecutive_failures += 1
        self._push(r, False)
        failures = sum(1 for ok in r.outcomes if not ok)
        rate_trips = len(r.outcomes) >= self._window and failures / len(r.outcomes) >= self._error_rate
        if r.admission is Admission.ADMITTED and (r.consecutive_failures >= self._eject_after or rate_trips):
            seconds = min(self._max, self._base * 2 ** r.ejections)
            r.ejected_until = self._clock() + seconds
            r.ejections += 1
            if self._on_eject is not None:
                self._on_eject(backend, seconds)
            r.consecutive_failures = 0
            r.admission = Admission.EJECTED

    def _push(self, r: _Record, ok: bool) -> None:
        r.outcomes.append(ok)
        while len(r.outcomes) > self._window:
            r.outcomes.popleft()

    def snapshot(self) -> dict[str, str]:
        return {name: (self.admission(name).value if self.admission(name) is not Admission.ADMITTED
                       else r.health.state.value) for name, r in self._records.items()}
