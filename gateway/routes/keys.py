"""Admin routes (admin keys only) for inference keys: create, list, get, update, revoke, usage."""

from __future__ import annotations

from collections.abc import Awaitable
from typing import TypeVar

import msgspec
from litestar import Response, delete, get, patch, post
from litestar.params import FromPath
from redis.exceptions import RedisError

from gateway.errors import APIError
from gateway.runtime import Runtime
from gateway.tenants.records import CreatedKey, KeyCreate, KeyList, KeyUpdate
from gateway.tenants.store import StoreUnavailable
from gateway.types import AnyRequest
from gateway.validation import decode_as

T = TypeVar("T")
MAX_BODY = 16_384


def _admin(request: AnyRequest) -> Runtime:
    runtime: Runtime = request.app.state.service.runtime
    runtime.auth.admin_from_header(request.headers.get("authorization"))
    return runtime


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


async def _body(request: AnyRequest) -> bytes:
    body = await request.body()
    if len(body) > MAX_BODY:
        raise APIError(413, "Request body too large.", code="request_too_large")
    return body


@post("/v1/lockgate/keys", status_code=201)
async def create_key(request: AnyRequest) -> Response[bytes]:
    rt = _admin(request)
    spec = decode_as(await _body(request), KeyCreate)
    unknown = [m for m in spec.models if m not in rt.config.models]
    if unknown:
        raise APIError(400, f"Unknown model {unknown[0]!r}.", param="models", code="model_not_found")
    record, secret = await _store(rt.tenancy.directory.create(spec))
    view = record.view()
    return _json(CreatedKey(**msgspec.structs.asdict(view), secret=secret), 201)


@get("/v1/lockgate/keys")
async def list_keys(request: AnyRequest) -> Response[bytes]:
    rt = _admin(request)
    records = await _store(rt.tenancy.directory.all())
    return _json(KeyList([r.view() for r in records]))


@get("/v1/lockgate/keys/{key_id:str}")
async def get_key(request: AnyRequest, key_id: FromPath[str]) -> Response[bytes]:
    rt = _admin(request)
    return _json((await _store(rt.tenancy.directory.get(key_id))).view())


@patch("/v1/lockgate/keys/{key_id:str}")
async def update_key(request: AnyRequest, key_id: FromPath[str]) -> Response[bytes]:
    rt = _admin(request)
    change = decode_as(await _body(request), KeyUpdate)
    if change.models is not msgspec.UNSET:
        unknown = [m for m in change.models if m not in rt.config.models]
        if unknown:
            raise APIError(400, f"Unknown model {unknown[0]!r}.", param="models", code="model_not_found")
    return _json((await _store(rt.tenancy.directory.update(key_id, change))).view())


@delete("/v1/lockgate/keys/{key_id:str}", status_code=200)
async def revoke_key(request: AnyRequest, key_id: FromPath[str]) -> Response[bytes]:
    """Revoke: the key is refused from now on (by other gateways within ``tenants.key_cache_s``); its record and
    usage stay readable."""
    rt = _admin(request)
    return _json((await _store(rt.tenancy.directory.revoke(key_id))).view())


@get("/v1/lockgate/keys/{key_id:str}/usage")
async def key_usage(request: AnyRequest, key_id: FromPath[str]) -> Response[bytes]:
    rt = _admin(request)
    retention = rt.config.tenants.usage_retention_days
    raw = request.query_params.get("days", "7")
    if not raw.isdigit() or not 1 <= int(raw) <= retention:
        raise APIError(400, f"days must be a whole number from 1 to {retention}.", param="days")
    await _store(rt.tenancy.directory.get(key_id))
    return _json(await _store(rt.tenancy.usage.read(key_id, int(raw))))
