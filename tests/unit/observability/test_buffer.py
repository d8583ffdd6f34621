"""RecordBuffer: batched records export exactly what one SDK call per record would, and none is lost or late."""

from __future__ import annotations

import asyncio
import random
import threading

import pytest
from opentelemetry.metrics import NoOpMeterProvider
from opentelemetry.sdk.metrics import Counter as CounterInstrument
from opentelemetry.sdk.metrics import Histogram as HistogramInstrument
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics import UpDownCounter as UpDownCounterInstrument
from opentelemetry.sdk.metrics.export import (
    AggregationTemporality,
    InMemoryMetricReader,
    MetricExporter,
    MetricExportResult,
    MetricsData,
    PeriodicExportingMetricReader,
)

from observability import semconv as sc
from observability.buffer import RecordBuffer
from observability.telemetry import Telemetry

BUFFERED = "lockgate.telemetry.buffered_records"


def _points(data: object) -> list[tuple[object, ...]]:
    out: list[tuple[object, ...]] = []
    for rm in data.resource_metrics:  # type: ignore[attr-defined]
        for sm in rm.scope_metrics:
            for m in sm.metrics:
                if m.name == BUFFERED:
                    continue
                for p in m.data.data_points:
                    attrs = dict(p.attributes or {})
                    if hasattr(p, "bucket_counts"):
                        out.append((m.name, attrs, list(p.bucket_counts), p.count, round(p.sum, 9), p.min, p.max))
                    else:
                        out.append((m.name, attrs, p.value))
    return sorted(out, key=repr)


def _reader(temporality: AggregationTemporality) -> InMemoryMetricReader:
    return InMemoryMetricReader(preferred_temporality={
        HistogramInstrument: temporality, CounterInstrument: temporality, UpDownCounterInstrument: temporality})


class _Side:
    def __init__(self, temporality: AggregationTemporality) -> None:
        self.reader = _reader(temporality)
        self.meter = MeterProvider(metric_readers=[self.reader]).get_meter("t")
        self.hist = self.meter.create_histogram("lat", unit="s", explicit_bucket_boundaries_advisory=sc.TPOT_BUCKETS)
        self.count = self.meter.create_counter("reqs")
        self.gauge = self.meter.create_up_down_counter("inflight")


@pytest.mark.parametrize("temporality", [AggregationTemporality.CUMULATIVE, AggregationTemporality.DELTA])
def test_collections_see_the_same_points_as_direct_records(temporality: AggregationTemporality) -> None:
    rng = random.Random(11)
    direct, batched = _Side(temporality), _Side(temporality)
    buffer = RecordBuffer(batched.meter, linger_s=3600)

    async def rounds() -> None:  # a running loop: the buffer holds records until a collection
        for round_ in range(4):
            for _ in range(200):
                attrs = {sc.REQUEST_MODEL: f"m{rng.randint(0, 2)}", sc.OUTCOME: rng.choice(["ok", "cancelled"])}
                kind = rng.randint(0, 3)
                if kind == 0:
                    value = rng.random()
                    direct.hist.record(value, attrs)
                    buffer.record(batched.hist, value, attrs)
                elif kind == 1:
                    values = [rng.random() / 10 for _ in range(rng.randint(1, 20))]
                    for v in values:
                        direct.hist.record(v, attrs)
                    buffer.record(batched.hist, values, attrs)
                elif kind == 2:
                    direct.count.add(1, attrs)
                    buffer.record(batched.count, 1, attrs)
                else:
                    step = rng.choice([1, -1])
                    direct.gauge.add(step, attrs)
                    buffer.record(batched.gauge, step, attrs)
            assert buffer.pending > 0
            assert _points(batched.reader.get_metrics_data()) == _points(direct.reader.get_metrics_data()), round_
            assert buffer.pending == 0

    asyncio.run(rounds())
    assert buffer.flushes == 4


def test_the_buffered_records_counter_counts_values() -> None:
    side = _Side(AggregationTemporality.CUMULATIVE)
    buffer = RecordBuffer(side.meter)
    buffer.record(side.hist, [0.1, 0.2, 0.3], {})
    buffer.record(side.count, 1, {})
    data = side.reader.get_metrics_data()
    assert data is not None
    (value,) = [p.value for rm in data.resource_metrics for sm in rm.scope_metrics for m in sm.metrics
                if m.name == BUFFERED for p in m.data.data_points]
    assert value == 4


def test_the_linger_timer_flushes_without_a_collection() -> None:
    side = _Side(AggregationTemporality.CUMULATIVE)
    buffer = RecordBuffer(side.meter, linger_s=0.05)

    async def scenario() -> None:
        buffer.record(side.hist, 0.5, {"a": "b"})
        buffer.record(side.hist, 0.7, {"a": "b"})
        assert buffer.pending == 2
        assert buffer.flushes == 0
        await asyncio.sleep(0.2)
        assert buffer.pending == 0
        assert buffer.flushes == 1
        buffer.record(side.hist, 0.9, {"a": "b"})  # the timer re-arms for the next record
        assert buffer.pending == 1
        await asyncio.sleep(0.2)
        assert buffer.pending == 0
        assert buffer.flushes == 2

    asyncio.run(scenario())
    assert buffer.records == 3


def test_a_full_buffer_flushes_at_once() -> None:
    side = _Side(AggregationTemporality.CUMULATIVE)
    buffer = RecordBuffer(side.meter, linger_s=3600, max_items=5)

    async def scenario() -> None:
        for _ in range(4):
            buffer.record(side.count, 1, {})
        assert buffer.pending == 4
        buffer.record(side.count, 1, {})
        assert buffer.pending == 0
        assert buffer.records == 5

    asyncio.run(scenario())


def test_outside_an_event_loop_records_are_delivered_at_once() -> None:
    side = _Side(AggregationTemporality.CUMULATIVE)
    buffer = RecordBuffer(side.meter)
    buffer.record(side.count, 2, {})
    assert buffer.pending == 0
    assert buffer.records == 1
    assert _points(side.reader.get_metrics_data()) == [("reqs", {}, 2)]


def test_records_from_many_threads_during_collections_are_all_counted() -> None:
    side = _Side(AggregationTemporality.DELTA)
    buffer = RecordBuffer(side.meter, linger_s=3600, max_items=50)
    total = 0.0
    stop = threading.Event()

    def collect() -> None:
        nonlocal total
        while not stop.is_set():
            total += sum(p[2] for p in _points(side.reader.get_metrics_data()) if p[0] == "reqs")  # type: ignore[misc]

    def produce() -> None:
        async def run() -> None:  # a loop per thread, as several runtimes would have
            for i in range(3000):
                buffer.record(side.count, 1, {"t": threading.get_ident() % 3})
                if i % 100 == 0:
                    await asyncio.sleep(0)
        asyncio.run(run())

    collector = threading.Thread(target=collect)
    collector.start()
    producers = [threading.Thread(target=produce) for _ in range(4)]
    for t in producers:
        t.start()
    for t in producers:
        t.join()
    stop.set()
    collector.join()
    total += sum(p[2] for p in _points(side.reader.get_metrics_data()) if p[0] == "reqs")  # type: ignore[misc]
    assert total == 4 * 3000


class _Kept(MetricExporter):
    def __init__(self) -> None:
        super().__init__()
        self.batches: list[MetricsData] = []

    def export(self, metrics_data: MetricsData, timeout_millis: float = 10_000, **_: object) -> MetricExportResult:
        self.batches.append(metrics_data)
        return MetricExportResult.SUCCESS

    def force_flush(self, timeout_millis: float = 10_000) -> bool:
        return True

    def shutdown(self, timeout_millis: float = 30_000, **_: object) -> None:
        pass


def test_telemetry_shutdown_exports_what_is_still_buffered() -> None:
    exporter = _Kept()
    reader = PeriodicExportingMetricReader(exporter, export_interval_millis=3_600_000)
    telemetry = Telemetry(meter_provider=MeterProvider(metric_readers=[reader]))

    async def scenario() -> None:
        telemetry.buffer.record(telemetry.instruments.requests, 1, {sc.OUTCOME: "ok"})
        assert telemetry.buffer.pending == 1

    asyncio.run(scenario())
    telemetry.shutdown()
    values = [p.value for data in exporter.batches for rm in data.resource_metrics
              for sm in rm.scope_metrics for m in sm.metrics if m.name == "lockgate.requests"
              for p in m.data.data_points]
    assert values == [1]


def test_with_the_no_op_meter_nothing_is_held() -> None:
    meter = NoOpMeterProvider().get_meter("t")
    buffer = RecordBuffer(meter)

    async def scenario() -> None:
        buffer.record(meter.create_histogram("h"), [0.1, 0.2], {})
        buffer.record(meter.create_counter("c"), 1, {})
        assert buffer.pending == 0

    asyncio.run(scenario())


def test_the_timers_flush_lets_the_loop_run_between_slices() -> None:
    side = _Side(AggregationTemporality.CUMULATIVE)
    # slice_s=0: every slice is over budget, so each loop turn hands over exactly one.
    buffer = RecordBuffer(side.meter, linger_s=0.01, slice_s=0.0)
    turns: list[int] = []

    async def scenario() -> None:
        for i in range(4):
            buffer.record(side.hist, [0.01] * 100, {"set": i})  # 4 groups of 100 values: 8 slices of <= 64
        await asyncio.sleep(0.05)  # the timer fires; its drain goes on turn by turn
        assert buffer.pending == 0
        buffer.record(side.hist, [0.02] * 200, {"set": "b"})  # 4 slices
        loop = asyncio.get_running_loop()
        loop.call_later(0.01, lambda: turns.append(buffer.pending))  # right after the timer's own turn
        await asyncio.sleep(0.011)
        while buffer.pending:
            turns.append(buffer.pending)
            await asyncio.sleep(0)

    asyncio.run(scenario())
    assert buffer.records == 600
    # Other callbacks ran while slices were still waiting: the flush never took the loop for all four at once.
    assert 0 < max(turns) < 4
    assert sum(p[3] for p in _points(side.reader.get_metrics_data())) == 600  # type: ignore[misc]
