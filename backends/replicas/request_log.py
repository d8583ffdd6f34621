"""An optional log of what a protocol replica received: one JSON line per HTTP request, with the headers an
engine acts on (``traceparent``, ``x-request-id``), so tests and demos can see what lockgate sent."""

from __future__ import annotations

import json
from pathlib import Path

from backends.replicas.app import ReplicaApp
from backends.replicas.asgi import Receive, Scope, Send

LOGGED_HEADERS = ("traceparent", "x-request-id")


class RequestLog:
    def __init__(self, app: ReplicaApp, path: Path) -> None:
        self.app = app
        self.path = path

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope.get("headers", ())}
            entry = {"method": scope["method"], "path": scope["path"],
                     **{h: headers.get(h) for h in LOGGED_HEADERS}}
            with self.path.open("a", encoding="utf-8") as f:
                f.write(json.dumps(entry) + "\n")
        await self.app(scope, receive, send)
