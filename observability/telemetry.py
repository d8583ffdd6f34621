"""Builds tracer and meter providers from the config. Off means no-op providers: nothing is recorded."""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence

from opentelemetry import metrics, trace
from opentelemetry.exporter.prometheus import PrometheusMetricReader
from opentelemetry.metrics import Meter
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import MetricReader
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import SpanProcessor, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from opentelemetry.sdk.trace.sampling import ParentBased, TraceIdRatioBased
from opentelemetry.trace import Tracer
from prometheus_client import CollectorRegistry

from gateway import __version__
from gateway.config.schema import TelemetryConfig
from observability.buffer import RecordBuffer
from observability.exporters import effective, metric_reader, span_exporter
from observability.instruments import Instruments

SCOPE = "lockgate"


class Telemetry:
    def __init__(
        self,
        tracer_provider: trace.TracerProvider | None = None,
        meter_provider: metrics.MeterProvider | None = None,
        *,
        record_content: bool = False,
        prometheus: CollectorRegistry | None = None,
    ) -> None:
        self._tracer_provider = tracer_provider or trace.NoOpTracerProvider()
        self._meter_provider = meter_provider or metrics.NoOpMeterProvider()
        self.tracer: Tracer = self._tracer_provider.get_tracer(SCOPE, __version__)
        self.meter: Meter = self._meter_provider.get_meter(SCOPE, __version__)
        self.instruments = Instruments(self.meter)
        self.buffer = RecordBuffer(self.meter)
        """Per-request records go through here (observability/buffer.py); others may record directly."""
        self.record_content = record_content
        self.prometheus = prometheus
        """The registry behind ``GET /metrics`` (None when Prometheus exposition is off)."""

    @classmethod
    def build(
        cls,
        config: TelemetryConfig,
        *,
        span_processors: Sequence[SpanProcessor] = (),
        metric_readers: Sequence[MetricReader] = (),
        environ: Mapping[str, str] | None = None,
    ) -> Telemetry:
        config = effective(config, os.environ if environ is None else environ)
        resource = Resource.create({"service.name": config.service_name, "service.version": __version__})
        processors = list(span_processors)
        exporter = span_exporter(config)
        if exporter is not None:
            processors.append(BatchSpanProcessor(exporter))
        readers = list(metric_readers)
        pushed = metric_reader(config)
        if pushed is not None:
            readers.append(pushed)
        registry = None
        if config.prometheus:
            # A registry of our own, not prometheus_client's global one: several runtimes can share a process.
            registry = CollectorRegistry()
            readers.append(PrometheusMetricReader(registry=registry))
        tp = None
        if processors:
            tp = TracerProvider(resource=resource, sampler=ParentBased(TraceIdRatioBased(config.trace_sample_ratio)))
            for p in processors:
                tp.add_span_processor(p)
        mp = MeterProvider(resource=resource, metric_readers=readers) if readers else None
        return cls(tp, mp, record_content=config.record_content, prometheus=registry)

    def shutdown(self) -> None:
        self.buffer.flush()  # before the providers' final export
        for provider in (self._tracer_provider, self._meter_provider):
            if isinstance(provider, TracerProvider | MeterProvider):
                provider.shutdown()
