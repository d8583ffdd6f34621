"""GET /v1/models and /v1/models/{id}."""

from __future__ import annotations

import msgspec
from litestar import Response, get
from litestar.params import FromPath

from gateway.protocol import ModelCard, ModelList
from gateway.runtime import Runtime
from gateway.tenants.records import KeyRecord
from gateway.types import AnyRequest
from gateway.validation import model_not_found


async def _runtime(request: AnyRequest) -> tuple[Runtime, KeyRecord | None]:
    runtime: Runtime = request.app.state.service.runtime
    key = await runtime.tenancy.authenticate(request.headers.get("authorization"))
    return runtime, key


@get("/v1/models")
async def list_models(request: AnyRequest) -> Response[bytes]:
    rt, key = await _runtime(request)
    cards = [ModelCard(id=name, created=rt.started_at, owned_by=m.owned_by) for name, m in rt.config.models.items()
             if key is None or key.allows(name)]
    return Response(msgspec.json.encode(ModelList(cards)), media_type="application/json")


@get("/v1/models/{model_id:path}")
async def get_model(request: AnyRequest, model_id: FromPath[str]) -> Response[bytes]:
    rt, key = await _runtime(request)
    name = model_id.lstrip("/")
    model = rt.config.models.get(name)
    if model is None or (key is not None and not key.allows(name)):
        raise model_not_found(name)
    return Response(msgspec.json.encode(ModelCard(id=name, created=rt.started_at, owned_by=model.owned_by)),
                    media_type="application/json")
