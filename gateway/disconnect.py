"""Notices a client that hangs up while its request waits or streams, and cancels the request's task.

One listener task per request, started once the body is read, replaces a watcher task plus ``asyncio.wait``
around the first-token wait and Litestar's per-stream task group. The cancellation it causes is absorbed at
the edge (``gateway.edge``), so a client that left is not logged as an application error; what the request
was running is cancelled on the way out (its job too).
"""

from __future__ import annotations

import asyncio

from litestar.types import Receive, Scope

CLIENT_WATCH = "lockgate.client_watch"


class ClientWatch:
    __slots__ = ("_listener", "_receive", "_task", "finished", "gone")

    def __init__(self, receive: Receive) -> None:
        self._receive = receive
        self._task: asyncio.Task[object] | None = None
        self._listener: asyncio.Task[None] | None = None
        self.finished = False
        self.gone = False

    @classmethod
    def start(cls, scope: Scope, receive: Receive) -> ClientWatch:
        """Watch the current task's client from now on (call after the request body was read)."""
        watch = cls(receive)
        loop = asyncio.get_running_loop()
        watch._task = asyncio.current_task(loop)
        watch._listener = loop.create_task(watch._listen())
        scope["state"][CLIENT_WATCH] = watch
        return watch

    async def _listen(self) -> None:
        while (await self._receive())["type"] != "http.disconnect":
            pass
        # After the last write uvicorn also reports a disconnect: by then the watch is finished.
        if not self.finished and self._task is not None and not self._task.done():
            self.gone = True
            self._task.cancel()

    def stop(self) -> None:
        """The response is complete (or being abandoned): stop watching."""
        self.finished = True
        if self._listener is not None:
            self._listener.cancel()
            self._listener = None

    def absorbed(self) -> bool:
        """On ``CancelledError`` in the request's task: True when it is this watch's doing alone."""
        self.stop()
        return self.gone and self._task is not None and self._task.uncancel() == 0
