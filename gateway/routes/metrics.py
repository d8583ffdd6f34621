"""GET /metrics: Prometheus text exposition of lockgate's metrics (aggregates only, no secrets)."""

from __future__ import annotations

from litestar import Response, get
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from gateway.errors import APIError
from gateway.types import AnyRequest


@get("/metrics")
async def metrics(request: AnyRequest) -> Response[bytes]:
    registry = request.app.state.service.runtime.telemetry.prometheus
    if registry is None:
        raise APIError(404, "Prometheus exposition is off (telemetry.prometheus = false).")
    return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)
