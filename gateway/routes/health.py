"""GET /healthz (the process is alive) and /readyz (dispatch reachable, a backend healthy)."""

from __future__ import annotations

from typing import Any

from litestar import Response, get

from gateway.types import AnyRequest


@get("/healthz")
async def healthz() -> dict[str, str]:
    return {"status": "ok"}


@get("/readyz")
async def readyz(request: AnyRequest) -> Response[dict[str, Any]]:
    ok, backends = await request.app.state.service.runtime.readiness()
    return Response({"status": "ready" if ok else "not_ready", "backends": backends}, status_code=200 if ok else 503)
