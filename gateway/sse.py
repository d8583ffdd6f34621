"""A streamed ``text/event-stream`` response written straight to ASGI ``send``.

Litestar's ``Stream`` runs each response in an anyio task group with a disconnect listener and sends every
chunk as its own body message, then an empty one to end the body (one more socket write). Here the body
callable writes already-coalesced chunks itself and marks the last one, which carries the end of the body;
disconnects are noticed by the request's ``ClientWatch``.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable
from typing import TYPE_CHECKING, Any

from litestar import Response
from litestar.response.base import ASGIResponse
from litestar.types import HTTPResponseBodyEvent, Receive, Scope, Send

if TYPE_CHECKING:
    from litestar.app import Litestar
    from litestar.background_tasks import BackgroundTask, BackgroundTasks
    from litestar.connection import Request
    from litestar.datastructures.cookie import Cookie
    from litestar.enums import MediaType
    from litestar.types import TypeEncodersMap

MEDIA_TYPE = "text/event-stream"
Write = Callable[[bytes, bool], Awaitable[None]]
"""``write(data, last)``: send ``data``; ``last`` ends the body with it."""
Body = Callable[[Write], Awaitable[None]]


class ASGIEventStream(ASGIResponse):
    __slots__ = ("_body",)

    _should_set_content_length = False

    def __init__(self, body: Body, *, headers: dict[str, Any], status_code: int | None) -> None:
        super().__init__(headers=headers, media_type=MEDIA_TYPE, status_code=status_code)
        self._body = body

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await self.start_response(send)
        ended = False

        async def write(data: bytes, last: bool) -> None:
            nonlocal ended
            message: HTTPResponseBodyEvent = {"type": "http.response.body", "body": data, "more_body": not last}
            ended = last
            await send(message)

        await self._body(write)
        if not ended:
            await write(b"", True)


class EventStream(Response[bytes]):
    """Return from a handler: the status and headers go out at once, then whatever ``body`` writes."""

    def __init__(self, body: Body, *, headers: dict[str, str]) -> None:
        super().__init__(b"", media_type=MEDIA_TYPE, headers=headers)
        self._body = body

    def to_asgi_response(
        self,
        app: Litestar | None,
        request: Request[Any, Any, Any],
        *,
        background: BackgroundTask | BackgroundTasks | None = None,
        cookies: Iterable[Cookie] | None = None,
        encoded_headers: Iterable[tuple[bytes, bytes]] | None = None,
        headers: dict[str, str] | None = None,
        is_head_response: bool = False,
        media_type: MediaType | str | None = None,
        status_code: int | None = None,
        type_encoders: TypeEncodersMap | None = None,
    ) -> ASGIResponse:
        merged = {**headers, **self.headers} if headers is not None else dict(self.headers)
        # Only POST routes stream, so there is no HEAD variant to handle.
        return ASGIEventStream(self._body, headers=merged, status_code=self.status_code or status_code)
