"""Admin routes (admin keys only) for inference keys: create, list, get, update, revoke, usage."""

from __future__ import annotations

from collections.abc import Awaitable
from typing import TypeVar

import msgspec
from litestar import Response, get, route
from litestar.params import FromPath
from redis.exceptions import RedisError

from gateway.errors import APIError
from gateway.runtime import Runtime
from gateway.tenants.records import CreatedKey, KeyCreate, KeyList, KeyUpdate
from gateway.tenants.store import StoreUnavailable
from gateway.types import AnyRequest
from gateway.validation import decode_as

T = TypeVar("T")


def _admin(request: AnyRequest) -> Runtime:
    runtime: Runtime = request.app.state.service.runtime
    runtime.auth.admin_from_header(request.headers.get("authorization"))
    return runtime


def _unknown_model(model: str) -> APIError:
    return APIError(404, f"The model {model!r} does not exist.", param="models", code="model_not_found")


def _json(value: object, status: int = 200) -> Response[bytes]:
    return Response(msgspec.json.encode(value), status_code=status, media_type="application/json")


async def _store(work: Awaitable[T]) -> T:
    try:
        return await work
    except StoreUnavailable as exc:
        raise APIError(503, str(exc), code="key_store_unavailable") from None
    except (RedisError, OSError) as exc:
        raise APIError(503, f"The key store (Redis) is not reachable: {type(exc).__name__}.",
                       code="key_store_unavailable") from None


# One handler per path, whatever the method: separate handlers on one path would each answer OPTIONS with
# only their own method in Allow.
@route("/v1/lockgate/keys", http_method=["GET", "POST"], status_code=200)
async def keys(request: AnyRequest) -> Response[bytes]:
    rt = _admin(request)
    if request.method == "GET":
        records = await _store(rt.tenancy.directory.all())
        return _json(KeyList([r.view() for r in records]))
    spec = decode_as(await request.body(), KeyCreate)
    unknown = [m for m in spec.models if m not in rt.config.models]
    if unknown:
        raise _unknown_model(unknown[0])
    record, secret = await _store(rt.tenancy.directory.create(spec))
    view = record.view()
    return _json(CreatedKey(**msgspec.structs.asdict(view), secret=secret), 201)


@route("/v1/lockgate/keys/{key_id:str}", http_method=["GET", "PATCH", "DELETE"], status_code=200)
async def key(request: AnyRequest, key_id: FromPath[str]) -> Response[bytes]:
    """GET shows, PATCH changes, DELETE revokes: the key is refused from then on (by other gateways within
    ``tenants.key_cache_s``); its record and usage stay readable."""
    rt = _admin(request)
    directory = rt.tenancy.directory
    if request.method == "GET":
        return _json((await _store(directory.get(key_id))).view())
    if request.method == "DELETE":
        return _json((await _store(directory.revoke(key_id))).view())
    change = decode_as(await request.body(), KeyUpdate)
    if change.models is not msgspec.UNSET:
        unknown = [m for m in change.models if m not in rt.config.models]
        if unknown:
            raise _unknown_model(unknown[0])
    return _json((await _store(directory.update(key_id, change))).view())


@get("/v1/lockgate/keys/{key_id:str}/usage")
async def key_usage(request: AnyRequest, key_id: FromPath[str]) -> Response[bytes]:
    rt = _admin(request)
    retention = rt.config.tenants.usage_retention_days
    raw = request.query_params.get("days", "7")
    if not raw.isdigit() or int(raw) < 1:
        raise APIError(400, "days must be a whole number, 1 or more.", param="days")
    await _store(rt.tenancy.directory.get(key_id))
    # Nothing older than the retention exists, so asking for more days is answered with what there is.
    return _json(await _store(rt.tenancy.usage.read(key_id, min(int(raw), retention))))
