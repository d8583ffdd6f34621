"""An optional log of what a protocol replica received: one JSON line per HTTP request, with the headers an
engine acts on (``traceparent``, ``x-request-id``), the body's ``priority`` and the client's port (one port per
connection: whether lockgate reused its connections), so tests and demos can see what lockgate sent."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from backends.replicas.app import ReplicaApp
from backends.replicas.asgi import Message, Receive, Scope, Send, read_body

LOGGED_HEADERS = ("traceparent", "x-request-id")


class RequestLog:
    def __init__(self, app: ReplicaApp, path: Path) -> None:
        self.app = app
        self.path = path

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope.get("headers", ())}
        body = await read_body(receive)
        client = scope.get("client")
        entry = {"method": scope["method"], "path": scope["path"], **{h: headers.get(h) for h in LOGGED_HEADERS},
                 "priority": _priority(body), "client_port": client[1] if client else None}
        with self.path.open("a", encoding="utf-8") as f:
            f.write(json.dumps(entry) + "\n")
        await self.app(scope, _replay(body, receive), send)


def _priority(body: bytes) -> Any:
    try:
        obj = json.loads(body) if body else None
    except ValueError:
        return None
    return obj.get("priority") if isinstance(obj, dict) else None


def _replay(body: bytes, receive: Receive) -> Receive:
    """The body already read, once, then the connection's own messages (its disconnect)."""
    sent = False

    async def replay() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replay
