"""The replica ASGI app: routes a request to the simulator and writes its events in an engine's format.

Behaviours every replica shares, as the engines have them: errors found before the first chunk are HTTP errors;
once the stream started they are written in the stream (or, for TensorRT-LLM, the connection is cut); a client
that disconnects cancels the generation (the simulator counts it, and its running gauge drops).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncGenerator, AsyncIterator
from typing import Any

import msgspec

from backends.events import Completed, Delta, Event, Failed, Started
from backends.replicas.asgi import Receive, Scope, Send, end, read_body, respond, start_stream, write
from backends.replicas.dialect import Dialect, Renderer, Route
from backends.replicas.parse import BadRequest
from backends.request import GenerationRequest
from backends.sim.engine import SimBackend
from backends.sim.text import count_tokens


class ConnectionCut(Exception):
    """Raised inside the ASGI app so the server drops the connection mid-body, as an engine crash does."""


class ReplicaApp:
    def __init__(self, dialect: Dialect, sim: SimBackend, model: str) -> None:
        self.dialect = dialect
        self.sim = sim
        self.model = model
        self._routes = dialect.routes()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await self._lifespan(receive, send)
            return
        if scope["type"] != "http":
            return
        target = self._routes.get((scope["method"], scope["path"]))
        if target is None:
            await respond(send, 404, b'{"detail":"Not Found"}')
            return
        if isinstance(target, str):
            status, body, ctype = self.dialect.info(target, await self.sim.load(), self.model)
            await respond(send, status, body, ctype)
            return
        await self._generate(target, scope, receive, send)

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await self.sim.start()
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await self.sim.close()
                await send({"type": "lifespan.shutdown.complete"})
                return

    async def _generate(self, route: Route, scope: Scope, receive: Receive, send: Send) -> None:
        raw = await read_body(receive)
        try:
            body: Any = msgspec.json.decode(raw)
            if not isinstance(body, dict):
                raise BadRequest("the body must be a JSON object")
            request = self.dialect.parse(route, body)
        except (msgspec.DecodeError, BadRequest, ValueError) as exc:
            message = exc.message if isinstance(exc, BadRequest) else str(exc)
            param = exc.param if isinstance(exc, BadRequest) else None
            status = exc.status if isinstance(exc, BadRequest) else 400
            kind = "BadRequestError" if isinstance(exc, BadRequest) else "RequestValidationError"
            failed = Failed(type=kind, message=message, status=status, param=param)
            await respond(send, status, self.dialect.error(route, failed, status))
            return
        prompt_tokens = count_tokens(request.prompt_text())
        if prompt_tokens >= self.sim.options.max_model_len:
            status, err = self.dialect.context_error(route, prompt_tokens, self.sim.options.max_model_len)
            await respond(send, status, err)
            return
        renderer = self.dialect.renderer(route, request, body, prompt_tokens)
        events = _without_started(self.sim.generate(request))
        try:
            first = await anext(events)
        except StopAsyncIteration:
            first = Failed(type="InternalServerError", message="no events", status=500)
        if isinstance(first, Failed):
            await respond(send, first.status, self.dialect.error(route, first, first.status))
            return
        if not body.get("stream", route.kind == "triton"):
            await self._whole(first, events, renderer, route, send)
            return
        await start_stream(send)
        await write(send, renderer.head())
        pump = asyncio.create_task(self._pump(first, events, renderer, send))
        gone = asyncio.create_task(_disconnected(receive))
        await asyncio.wait({pump, gone}, return_when=asyncio.FIRST_COMPLETED)
        if not pump.done():
            pump.cancel()  # the client left: cancel the generation, as vLLM and SGLang abort it
        gone.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await gone
        with contextlib.suppress(asyncio.CancelledError):
            await pump  # ConnectionCut propagates: the server drops the connection

    async def _pump(self, first: Event, events: AsyncGenerator[Event, None], renderer: Renderer, send: Send) -> None:
        try:
            event: Event | None = first
            while event is not None:
                if isinstance(event, Delta):
                    await write(send, renderer.delta(event))
                elif isinstance(event, Completed):
                    await write(send, renderer.completed(event))
                    break
                elif isinstance(event, Failed):
                    data = renderer.failed(event)
                    if data is None:
                        raise ConnectionCut(event.message)
                    await write(send, data)
                    break
                event = await anext(events, None)
            await end(send)
        finally:
            await events.aclose()

    async def _whole(self, first: Event, events: AsyncIterator[Event], renderer: Renderer, route: Route,
                     send: Send) -> None:
        event: Event | None = first
        while event is not None:
            if isinstance(event, Delta):
                renderer.delta(event)
            elif isinstance(event, Completed):
                await respond(send, 200, renderer.full(event))
                return
            elif isinstance(event, Failed):
                await respond(send, event.status, self.dialect.error(route, event, event.status))
                return
            event = await anext(events, None)
        await respond(send, 500, self.dialect.error(route, Failed(type="InternalServerError", message="no result"),
                                                    500))


async def _without_started(events: AsyncIterator[Event]) -> AsyncGenerator[Event, None]:
    async for event in events:
        if not isinstance(event, Started):
            yield event


async def _disconnected(receive: Receive) -> None:
    while (await receive())["type"] != "http.disconnect":
        pass


def build_replica(protocol: str, sim: SimBackend, model: str) -> ReplicaApp:
    from backends.replicas.sglang import SglangDialect
    from backends.replicas.trtllm import TrtllmDialect
    from backends.replicas.vllm import VllmDialect

    dialects: dict[str, type[VllmDialect] | type[SglangDialect] | type[TrtllmDialect]] = {
        "vllm": VllmDialect, "sglang": SglangDialect, "trtllm": TrtllmDialect}
    return ReplicaApp(dialects[protocol](model), sim, model)


__all__ = ["ConnectionCut", "GenerationRequest", "ReplicaApp", "build_replica"]
