"""Span and metric exporters chosen by the config, with the standard ``OTEL_*`` variables on top.

Precedence: ``OTEL_*`` environment variables, then the config file, then defaults. OTLP over HTTP and gRPC
come from the official exporters, which also read ``OTEL_EXPORTER_OTLP_HEADERS`` and friends themselves.
"""

from __future__ import annotations

from collections.abc import Mapping

import msgspec
from opentelemetry.sdk.metrics.export import (
    ConsoleMetricExporter,
    MetricExporter,
    MetricReader,
    PeriodicExportingMetricReader,
)
from opentelemetry.sdk.trace.export import ConsoleSpanExporter, SpanExporter

from gateway.config.schema import TelemetryConfig


class TelemetryConfigError(ValueError):
    pass


def effective(config: TelemetryConfig, env: Mapping[str, str]) -> TelemetryConfig:
    """The config with ``OTEL_*`` overrides applied."""
    changes: dict[str, object] = {}
    disabled = env.get("OTEL_SDK_DISABLED", "").lower() == "true"
    if disabled:
        changes.update(traces="none", metrics="none")
    for var, field in (("OTEL_TRACES_EXPORTER", "traces"), ("OTEL_METRICS_EXPORTER", "metrics")):
        value = env.get(var)
        if value and not disabled:
            if value not in ("none", "console", "otlp"):
                raise TelemetryConfigError(f"{var}={value!r}: lockgate supports none, console and otlp")
            changes[field] = value
    if env.get("OTEL_SERVICE_NAME"):
        changes["service_name"] = env["OTEL_SERVICE_NAME"]
    if env.get("OTEL_EXPORTER_OTLP_ENDPOINT") and config.otlp_endpoint is None:
        changes["otlp_endpoint"] = env["OTEL_EXPORTER_OTLP_ENDPOINT"]
    protocol = env.get("OTEL_EXPORTER_OTLP_PROTOCOL")
    if protocol:
        if protocol not in ("http/protobuf", "grpc"):
            raise TelemetryConfigError(f"OTEL_EXPORTER_OTLP_PROTOCOL={protocol!r}: use http/protobuf or grpc")
        changes["otlp_protocol"] = protocol
    return msgspec.structs.replace(config, **changes) if changes else config


def span_exporter(config: TelemetryConfig) -> SpanExporter | None:
    if config.traces == "console":
        return ConsoleSpanExporter()
    if config.traces != "otlp":
        return None
    if config.otlp_protocol == "grpc":
        from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter as GrpcSpans

        return GrpcSpans(endpoint=config.otlp_endpoint) if config.otlp_endpoint else GrpcSpans()
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter as HttpSpans

    if config.otlp_endpoint:
        return HttpSpans(endpoint=config.otlp_endpoint.rstrip("/") + "/v1/traces")
    return HttpSpans()


def metric_reader(config: TelemetryConfig) -> MetricReader | None:
    exporter: MetricExporter
    if config.metrics == "console":
        exporter = ConsoleMetricExporter()
    elif config.metrics == "otlp":
        if config.otlp_protocol == "grpc":
            from opentelemetry.exporter.otlp.proto.grpc.metric_exporter import OTLPMetricExporter as GrpcMetrics

            exporter = GrpcMetrics(endpoint=config.otlp_endpoint) if config.otlp_endpoint else GrpcMetrics()
        else:
            from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter as HttpMetrics

            exporter = (HttpMetrics(endpoint=config.otlp_endpoint.rstrip("/") + "/v1/metrics")
                        if config.otlp_endpoint else HttpMetrics())
    else:
        return None
    return PeriodicExportingMetricReader(exporter, export_interval_millis=config.export_interval_ms)
