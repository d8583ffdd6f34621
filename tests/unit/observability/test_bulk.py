"""record_many feeds the SDK's own aggregations: every exported figure equals one record() per sample."""

from __future__ import annotations

import random

import pytest
from opentelemetry.metrics import NoOpMeterProvider
from opentelemetry.sdk.metrics import Histogram as HistogramInstrument
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import AggregationTemporality, InMemoryMetricReader
from opentelemetry.sdk.metrics.view import View

from observability import semconv as sc
from observability.bulk import record_many

ATTRS = {sc.OPERATION: "chat", sc.REQUEST_MODEL: "m", sc.BACKEND: "b"}


def _points(reader: InMemoryMetricReader) -> list[tuple[object, ...]]:
    data = reader.get_metrics_data()
    assert data is not None
    return [(m.name, dict(p.attributes or {}), list(p.bucket_counts), p.count, round(p.sum, 12), p.min, p.max)
            for rm in data.resource_metrics for sm in rm.scope_metrics for m in sm.metrics
            for p in m.data.data_points]


def _pair(temporality: AggregationTemporality, views: tuple[View, ...] = ()) -> tuple[object, ...]:
    readers = []
    histograms = []
    for _ in range(2):
        reader = InMemoryMetricReader(preferred_temporality={HistogramInstrument: temporality})
        meter = MeterProvider(metric_readers=[reader], views=list(views)).get_meter("t")
        readers.append(reader)
        histograms.append(meter.create_histogram("itl", unit="s", explicit_bucket_boundaries_advisory=sc.TPOT_BUCKETS))
    return readers[0], histograms[0], readers[1], histograms[1]


@pytest.mark.parametrize("temporality", [AggregationTemporality.CUMULATIVE, AggregationTemporality.DELTA])
def test_same_points_as_one_record_per_sample(temporality: AggregationTemporality) -> None:
    rng = random.Random(7)
    one_by_one, h1, bulk, h2 = _pair(temporality)  # type: ignore[misc]
    for round_ in range(3):
        for _ in range(20):
            values = [rng.choice([0.0, 0.01, 0.3, 5.0]) or rng.random() / 10 for _ in range(rng.randint(0, 40))]
            attrs = {**ATTRS, sc.ARM: f"arm{rng.randint(0, 2)}"}
            for v in values:
                h1.record(v, attrs)
            record_many(h2, values, attrs)
        # Collected between rounds: with delta temporality each round starts from empty aggregations.
        assert _points(one_by_one) == _points(bulk), round_


def test_view_attribute_filter_is_applied() -> None:
    view = View(instrument_name="itl", attribute_keys={sc.OPERATION})
    one_by_one, h1, bulk, h2 = _pair(AggregationTemporality.CUMULATIVE, (view,))  # type: ignore[misc]
    for v in (0.02, 0.2, 2.0):
        h1.record(v, ATTRS)
    record_many(h2, [0.02, 0.2, 2.0], ATTRS)
    points = _points(bulk)
    assert points == _points(one_by_one)
    assert points[0][1] == {sc.OPERATION: "chat"}


def test_invalid_values_and_other_meters_fall_back_to_record() -> None:
    one_by_one, h1, bulk, h2 = _pair(AggregationTemporality.CUMULATIVE)  # type: ignore[misc]
    for v in (0.1, -1.0, float("nan"), 0.2):
        h1.record(v, ATTRS)
    record_many(h2, [0.1, -1.0, float("nan"), 0.2], ATTRS)
    assert _points(one_by_one) == _points(bulk)
    assert _points(bulk)[0][3] == 2  # the negative and NaN samples are dropped, as record() drops them
    noop = NoOpMeterProvider().get_meter("t").create_histogram("itl")
    record_many(noop, [0.1, 0.2], ATTRS)
    record_many(h2, [], ATTRS)
