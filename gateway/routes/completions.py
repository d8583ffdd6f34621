"""POST /v1/chat/completions and /v1/completions."""

from __future__ import annotations

import asyncio

from litestar import Response, post

from gateway.errors import APIError
from gateway.serving import CompletionService
from gateway.types import AnyRequest


async def _serve(request: AnyRequest, chat: bool) -> Response[bytes]:
    service: CompletionService = request.app.state.service
    principal = await service.runtime.tenancy.authenticate(request.headers.get("authorization"))
    try:
        async with asyncio.timeout(service.runtime.config.server.body_timeout_s):
            body = await request.body()
    except TimeoutError:
        raise APIError(408, "The request body was not received in time.", code="request_timeout") from None
    return await service.handle(request, body, chat, request.scope["state"]["request_id"], principal)


@post("/v1/chat/completions", status_code=200)
async def chat_completions(request: AnyRequest) -> Response[bytes]:
    return await _serve(request, chat=True)


@post("/v1/completions", status_code=200)
async def completions(request: AnyRequest) -> Response[bytes]:
    return await _serve(request, chat=False)
