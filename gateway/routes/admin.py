"""Admin routes (admin keys only): the experiment readout."""

from __future__ import annotations

import time

import msgspec
from litestar import Response, get

from gateway.runtime import Runtime
from gateway.types import AnyRequest


@get("/v1/lockgate/experiments")
async def experiments(request: AnyRequest) -> Response[bytes]:
    runtime: Runtime = request.app.state.service.runtime
    runtime.auth.admin_from_header(request.headers.get("authorization"))
    body = {"object": "lockgate.experiments", "generated_at": int(time.time()),
            "models": runtime.experiments.report()}
    return Response(msgspec.json.encode(body), media_type="application/json")
