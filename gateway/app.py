"""The Litestar application: routes, errors in OpenAI's shape, request ids, runtime lifecycle."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import msgspec
from litestar import Litestar, Response
from litestar.datastructures import State
from litestar.exceptions import HTTPException
from litestar.types import ASGIApp

from gateway.edge import write_timeout_middleware
from gateway.errors import APIError
from gateway.request_id import request_id_middleware
from gateway.routes.admin import experiments
from gateway.routes.completions import chat_completions, completions
from gateway.routes.health import healthz, readyz
from gateway.routes.keys import key, key_usage, keys
from gateway.routes.metrics import metrics
from gateway.routes.models import get_model, list_models
from gateway.routes.openapi import openapi_document
from gateway.runtime import Runtime
from gateway.serving import CompletionService
from gateway.types import AnyRequest

log = logging.getLogger("lockgate.gateway")


def _error_response(err: APIError) -> Response[bytes]:
    return Response(msgspec.json.encode(err.body()), status_code=err.status, media_type="application/json",
                    headers=err.headers)


def _on_api_error(_: AnyRequest, exc: Exception) -> Response[bytes]:
    assert isinstance(exc, APIError)
    return _error_response(exc)


def _on_http_exception(_: AnyRequest, exc: Exception) -> Response[bytes]:
    assert isinstance(exc, HTTPException)
    status = exc.status_code
    message = {404: "Not found.", 405: "Method not allowed.",
               413: "Request body too large."}.get(status, str(exc.detail))
    code = {413: "request_too_large"}.get(status)
    return _error_response(APIError(status, message, code=code, headers=dict(exc.headers or {})))


def _on_unexpected(request: AnyRequest, exc: Exception) -> Response[bytes]:
    # Logged with its traceback here; the client gets a plain message and never a stack trace.
    log.error("unhandled error on %s %s", request.method, request.url.path, exc_info=exc)
    return _error_response(APIError(500, "The server had an error while processing your request."))


def asgi_app(runtime: Runtime) -> ASGIApp:
    """What a server should run: the Litestar app inside the edge layer (write deadlines, finishers)."""
    return write_timeout_middleware(create_app(runtime), runtime.config.server.write_timeout_s)


def create_app(runtime: Runtime, *, manage_runtime: bool = True) -> Litestar:
    """``manage_runtime``: start and close the runtime with the app (off when the caller owns it)."""

    @asynccontextmanager
    async def lifespan(_: Litestar) -> AsyncIterator[None]:
        if manage_runtime:
            await runtime.start()
        try:
            yield
        finally:
            if manage_runtime:
                await runtime.close()

    return Litestar(
        route_handlers=[chat_completions, completions, list_models, get_model, healthz, readyz, experiments,
                        metrics, openapi_document, keys, key, key_usage],
        lifespan=[lifespan],
        middleware=[request_id_middleware],
        exception_handlers={APIError: _on_api_error, HTTPException: _on_http_exception, Exception: _on_unexpected},
        request_max_body_size=runtime.config.server.max_body_bytes,
        openapi_config=None,
        state=State({"service": CompletionService(runtime)}),
        logging_config=None,
    )
