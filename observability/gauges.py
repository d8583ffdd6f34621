"""Observable gauges: queue depth, running jobs, backend health and engine load, per backend.

Callbacks are synchronous and run at collection time, so they read the status the health poller cached
instead of calling backends.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Protocol

from opentelemetry.metrics import CallbackOptions, Observation

from backends.protocol import HealthState
from dispatch.contract import BackendStatus
from observability import semconv as sc
from observability.telemetry import Telemetry


class StatusSource(Protocol):
    status: dict[str, BackendStatus]
    engines: dict[str, str]


def register_gauges(telemetry: Telemetry, source: StatusSource) -> None:
    def each(value: str) -> Iterable[Observation]:
        for backend, status in source.status.items():
            attrs = {sc.BACKEND: backend, sc.PROVIDER: source.engines.get(backend, "unknown")}
            if value == "queued":
                yield Observation(status.queued, attrs)
            elif value == "running":
                yield Observation(status.running, attrs)
            elif value == "healthy":
                for state in HealthState:
                    yield Observation(1 if status.health.state is state else 0, {**attrs, "state": state.value})
            elif status.load is not None:
                figure = {"engine_waiting": status.load.waiting, "engine_running": status.load.running,
                          "kv_cache_usage": status.load.kv_cache_usage}[value]
                if figure is not None:
                    yield Observation(figure, attrs)

    def callback(value: str) -> Callable[[CallbackOptions], Iterable[Observation]]:
        def observe(_: CallbackOptions) -> Iterable[Observation]:
            return list(each(value))
        return observe

    meter = telemetry.meter
    meter.create_observable_gauge("lockgate.queue.depth", [callback("queued")], unit="{job}",
                                  description="Jobs waiting per backend")
    meter.create_observable_gauge("lockgate.jobs.running", [callback("running")], unit="{job}",
                                  description="Jobs running per backend")
    meter.create_observable_gauge("lockgate.backend.health", [callback("healthy")], unit="1",
                                  description="1 for the backend's current health state")
    meter.create_observable_gauge("lockgate.engine.waiting", [callback("engine_waiting")], unit="{request}",
                                  description="Requests waiting inside the engine, as it reports")
    meter.create_observable_gauge("lockgate.engine.running", [callback("engine_running")], unit="{request}",
                                  description="Requests running inside the engine, as it reports")
    meter.create_observable_gauge("lockgate.engine.kv_cache_usage", [callback("kv_cache_usage")], unit="1",
                                  description="KV-cache use reported by the engine (0..1)")
