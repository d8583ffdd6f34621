"""Edge hardening against hostile or broken clients.

- Slow headers (slowloris): each request's headers must arrive within ``header_timeout_s`` of its first
  byte (and a new connection must start sending within it); otherwise the connection is closed.
- Clients that stop reading a stream: each body write must complete within ``write_timeout_s``; otherwise
  the response is abandoned, which cancels the job, and the connection is closed. With the per-job event
  buffer bounded, a stalled client holds at most that buffer plus the socket buffers.
Slow bodies are handled where the body is read (408), connection counts by uvicorn's ``limit_concurrency``.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

from litestar.enums import ScopeType
from litestar.types import ASGIApp, HTTPResponseBodyEvent, HTTPResponseStartEvent, Message, Receive, Scope, Send
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from gateway.disconnect import CLIENT_WATCH
from gateway.watchdog import Watchdog

log = logging.getLogger("lockgate.edge")


_OVERLOADED = (b'{"error":{"message":"The gateway is at its connection limit; retry shortly.",'
               b'"type":"server_error","param":null,"code":"too_many_connections"}}')


async def _overloaded(scope: Scope, receive: Receive, send: Send) -> None:
    start: HTTPResponseStartEvent = {
        "type": "http.response.start", "status": 503,
        "headers": [(b"content-type", b"application/json"), (b"retry-after", b"1"), (b"connection", b"close")]}
    await send(start)
    body: HTTPResponseBodyEvent = {"type": "http.response.body", "body": _OVERLOADED, "more_body": False}
    await send(body)


class GuardedHttpToolsProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol with a header-read deadline (uvicorn itself has none) and a connection
    limit answered in OpenAI's error shape (uvicorn's own answers plain text, one connection early)."""

    header_timeout_s: float = 10.0
    max_connections: int | None = None
    _header_deadline: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm()

    def data_received(self, data: bytes) -> None:
        if self._header_deadline is None and (self.cycle is None or self.cycle.response_complete):
            self._arm()  # the first byte of the next request on a kept-alive connection
        super().data_received(data)

    def on_headers_complete(self) -> None:
        self._disarm()
        if self.max_connections is not None and len(self.connections) > self.max_connections:
            log.warning("connection limit (%d) reached: answering 503", self.max_connections)
            served, self.app = self.app, _overloaded
            try:
                super().on_headers_complete()
            finally:
                self.app = served
            return
        super().on_headers_complete()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)

    def _arm(self) -> None:
        self._header_deadline = self.loop.call_later(self.header_timeout_s, self._headers_too_slow)

    def _disarm(self) -> None:
        if self._header_deadline is not None:
            self._header_deadline.cancel()
            self._header_deadline = None

    def _headers_too_slow(self) -> None:
        self._header_deadline = None
        if not self.transport.is_closing():
            log.info("closing connection from %s: headers not received within %gs",
                     self.client[0] if self.client else "?", self.header_timeout_s)
            self.transport.close()


def guarded_protocol(header_timeout_s: float, max_connections: int) -> type[GuardedHttpToolsProtocol]:
    return type("GuardedHttpToolsProtocol", (GuardedHttpToolsProtocol,),
                {"header_timeout_s": header_timeout_s, "max_connections": max_connections})


class ClientTooSlow(Exception):
    """A response write did not complete in time: the client stopped reading."""


FINISHERS = "lockgate.finishers"


def add_finisher(scope: Scope, finisher: Callable[[], Awaitable[None]]) -> None:
    """Run ``finisher`` when the response ends, however it ends. Frameworks do not close a streaming body
    iterator whose send failed or was cancelled; this is what guarantees its job is cancelled."""
    scope["state"].setdefault(FINISHERS, []).append(finisher)


def _caused_by(exc: BaseException | None, kind: type[BaseException]) -> bool:
    while exc is not None:
        if isinstance(exc, kind):
            return True
        exc = exc.__cause__ or exc.__context__
    return False


def write_timeout_middleware(app: ASGIApp, timeout_s: float) -> ASGIApp:
    """The outermost layer: write deadlines, and the finishers of every response."""

    async def middleware(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != ScopeType.HTTP:
            await app(scope, receive, send)
            return
        state = scope.setdefault("state", {})
        # One lazily re-armed timer per response, not an asyncio.timeout per chunk (gateway.watchdog).
        watchdog = Watchdog(timeout_s, asyncio.get_running_loop())

        async def guarded(message: Message) -> None:
            if message["type"] != "http.response.body":
                await send(message)
                return
            watchdog.begin()
            try:
                await send(message)
            except asyncio.CancelledError:
                if watchdog.expired():
                    raise ClientTooSlow from None
                raise
            finally:
                watchdog.end()

        try:
            await app(scope, receive, guarded)
        except asyncio.CancelledError:
            watch = state.get(CLIENT_WATCH)
            if watch is None or not watch.absorbed():
                raise
            # The client hung up: its request was cancelled on purpose; the finishers cancel the job.
        except Exception as exc:
            if not _caused_by(exc, ClientTooSlow):
                raise
            # The response is abandoned half-way; uvicorn closes the connection, the finishers cancel the job.
            log.info("dropped a client that stopped reading for %gs (%s %s)", timeout_s, scope.get("method"),
                     scope.get("path"))
        finally:
            watchdog.close()
            watch = state.get(CLIENT_WATCH)
            if watch is not None:
                watch.stop()
            for finisher in state.get(FINISHERS, ()):
                await asyncio.shield(finisher())

    return middleware
