"""Per-request metric records, batched: one SDK call per instrument and attribute set, not one per record.

A streamed request makes about ten records (TTFT, TPOT, queue wait, overhead, tokens, duration, the request
counter, in-flight up and down, the ITL batch). Each ``record``/``add`` pays the SDK's whole per-call path
(exemplar filter, attribute validation and hashing, per reader and view): measured with py-spy, about a tenth
of the gateway's CPU per request. Requests share a handful of attribute sets (model, backend, arm, outcome),
so ``RecordBuffer`` keeps records in a list and hands them to the SDK grouped: a histogram's values through
``observability.bulk.record_many``, a counter's as one ``add`` of their sum.

Nothing is lost or seen late by an exporter: the buffer registers an observable counter whose callback flushes
it, and the SDK runs observable callbacks before it reads the synchronous instruments' aggregations, at every
collection (a Prometheus scrape, an OTLP export, ``get_metrics_data``). Between collections the buffer flushes
itself ``linger_s`` after its first record (a timer on the running event loop, handing the batch over in slices
of at most ``slice_s`` between which the loop serves I/O) or when it holds ``max_items``.
``Telemetry.shutdown`` flushes it before the providers' final export.

Records may come from any thread (a collection may run in the OTLP exporter's thread); a lock guards the list.
With the no-op meter (metrics off) records go straight to the no-op instruments, which cost nothing.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections import deque
from collections.abc import Iterable, Mapping
from typing import TypeAlias

from opentelemetry.metrics import CallbackOptions, Counter, Histogram, Meter, Observation, UpDownCounter
from opentelemetry.sdk.metrics import Meter as SDKMeter
from opentelemetry.util.types import AttributeValue

from observability.bulk import record_many

Instrument: TypeAlias = Histogram | Counter | UpDownCounter
Attributes: TypeAlias = Mapping[str, AttributeValue]
_Key: TypeAlias = tuple[int, tuple[tuple[str, AttributeValue], ...]]
_SLICE = 64
"""Values per SDK call on the timer's path: bounds the time one call holds the loop (~0.1-0.3 ms)."""


class RecordBuffer:
    def __init__(self, meter: Meter, *, linger_s: float = 0.25, max_items: int = 8192,
                 slice_s: float = 0.0005) -> None:
        """``slice_s``: the longest the timer's flush holds the event loop before it lets I/O run (a flush of a
        busy quarter second is several ms of SDK work; done in one go it would delay whatever arrived meanwhile,
        which shows in the gateway's p99)."""
        self._lock = threading.Lock()
        self._items: list[tuple[Instrument, Attributes, float | list[float]]] = []
        self._ready: deque[tuple[Instrument, Attributes, list[float]]] = deque()
        """Grouped and sliced, waiting for the event loop's next turn (timer flushes only)."""
        self._timer: asyncio.TimerHandle | None = None
        self._linger_s = linger_s
        self._max_items = max_items
        self._slice_s = slice_s
        self._batched = isinstance(meter, SDKMeter)
        self.records = 0
        """Values handed to the SDK through the buffer so far."""
        self.flushes = 0
        if self._batched:
            meter.create_observable_counter(
                "lockgate.telemetry.buffered_records", [self._on_collect], unit="{record}",
                description="Metric records batched per instrument and attribute set before the SDK")

    @property
    def pending(self) -> int:
        return len(self._items) + len(self._ready)

    def record(self, instrument: Instrument, value: float | list[float], attributes: Attributes) -> None:
        """One value, or a list of values of one histogram (a request's inter-token latencies).

        Neither ``attributes`` nor the list may change after the call: they are read when the buffer flushes.
        """
        if not self._batched:
            _deliver(instrument, value if isinstance(value, list) else [value], attributes)
            return
        with self._lock:
            self._items.append((instrument, attributes, value))
            n = len(self._items)
        if n >= self._max_items:
            self.flush()
        elif n == 1:
            self._arm()

    def flush(self) -> None:
        """Everything recorded so far reaches the SDK before this returns (collections, shutdown, a full buffer)."""
        self._group()
        while (work := self._next()) is not None:
            self._hand_over(work)

    def _group(self) -> None:
        with self._lock:
            items, self._items = self._items, []
            timer, self._timer = self._timer, None
        if timer is not None:
            timer.cancel()
        if not items:
            return
        groups: dict[_Key, tuple[Instrument, Attributes, list[float]]] = {}
        for instrument, attributes, value in items:
            key = (id(instrument), tuple(attributes.items()))
            group = groups.get(key)
            if group is None:
                group = groups[key] = (instrument, attributes, [])
            if isinstance(value, list):
                group[2].extend(value)
            else:
                group[2].append(value)
        with self._lock:
            for instrument, attributes, values in groups.values():
                for i in range(0, len(values), _SLICE):
                    self._ready.append((instrument, attributes, values[i:i + _SLICE]))
        self.flushes += 1

    def _next(self) -> tuple[Instrument, Attributes, list[float]] | None:
        with self._lock:
            return self._ready.popleft() if self._ready else None

    def _hand_over(self, work: tuple[Instrument, Attributes, list[float]]) -> None:
        instrument, attributes, values = work
        _deliver(instrument, values, attributes)
        self.records += len(values)

    def _on_timer(self) -> None:
        self._group()
        self._drain()

    def _drain(self) -> None:
        deadline = time.perf_counter() + self._slice_s
        while (work := self._next()) is not None:
            self._hand_over(work)
            if time.perf_counter() >= deadline:
                if self.pending:
                    # The rest on the loop's next turn: requests' I/O runs in between.
                    asyncio.get_running_loop().call_soon(self._drain)
                return

    def _arm(self) -> None:
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            # No loop in this thread (a CLI command, a test): nothing would fire the timer.
            self.flush()
            return
        timer = loop.call_later(self._linger_s, self._on_timer)
        with self._lock:
            stale, self._timer = self._timer, timer
        if stale is not None:
            stale.cancel()

    def _on_collect(self, _: CallbackOptions) -> Iterable[Observation]:
        self.flush()
        return [Observation(self.records)]


def _deliver(instrument: Instrument, values: list[float], attributes: Attributes) -> None:
    if isinstance(instrument, Histogram):
        record_many(instrument, values, attributes)
    else:
        # A counter's exported state is its sum: one add of the batch's sum is indistinguishable from many.
        instrument.add(sum(values), attributes)
