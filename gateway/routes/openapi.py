"""GET /openapi.json."""

from __future__ import annotations

import msgspec
from litestar import Response, get

from gateway.openapi import build_openapi


@get("/openapi.json")
async def openapi_document() -> Response[bytes]:
    return Response(msgspec.json.encode(build_openapi()), media_type="application/json")
