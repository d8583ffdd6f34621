"""OpenTelemetry tracing and metrics: providers owned by a Telemetry object, never installed globally."""

from observability.recorder import RequestRecorder
from observability.telemetry import Telemetry

__all__ = ["RequestRecorder", "Telemetry"]
