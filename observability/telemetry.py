"""Builds tracer and meter providers from the config. Off means no-op providers: nothing is recorded."""

from __future__ import annotations

from collections.abc import Sequence

from opentelemetry import metrics, trace
from opentelemetry.metrics import Meter
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import (
    ConsoleMetricExporter,
    MetricReader,
    PeriodicExportingMetricReader,
)
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import SpanProcessor, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, ConsoleSpanExporter
from opentelemetry.trace import Tracer

from gateway.config.schema import TelemetryConfig
from observability.instruments import Instruments

SCOPE = "lockgate"


class Telemetry:
    def __init__(
        self,
        tracer_provider: trace.TracerProvider | None = None,
        meter_provider: metrics.MeterProvider | None = None,
        *,
        record_content: bool = False,
    ) -> None:
        self._tracer_provider = tracer_provider or trace.NoOpTracerProvider()
        self._meter_provider = meter_provider or metrics.NoOpMeterProvider()
        self.tracer: Tracer = self._tracer_provider.get_tracer(SCOPE)
        self.meter: Meter = self._meter_provider.get_meter(SCOPE)
        self.instruments = Instruments(self.meter)
        self.record_content = record_content

    @classmethod
    def build(
        cls,
        config: TelemetryConfig,
        *,
        span_processors: Sequence[SpanProcessor] = (),
        metric_readers: Sequence[MetricReader] = (),
    ) -> Telemetry:
        resource = Resource.create({"service.name": config.service_name})
        processors = list(span_processors)
        readers = list(metric_readers)
        if config.traces == "console":
            processors.append(BatchSpanProcessor(ConsoleSpanExporter()))
        if config.metrics == "console":
            readers.append(PeriodicExportingMetricReader(ConsoleMetricExporter(),
                                                         export_interval_millis=config.export_interval_ms))
        tp = None
        if processors:
            tp = TracerProvider(resource=resource)
            for p in processors:
                tp.add_span_processor(p)
        mp = MeterProvider(resource=resource, metric_readers=readers) if readers else None
        return cls(tp, mp, record_content=config.record_content)

    def shutdown(self) -> None:
        for provider in (self._tracer_provider, self._meter_provider):
            if isinstance(provider, TracerProvider | MeterProvider):
                provider.shutdown()
