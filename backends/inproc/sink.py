"""Hands events from an engine thread to the asyncio task that serves the request."""

from __future__ import annotations

import asyncio
import contextlib

from backends.events import Event


class EventSink:
    """Thread-safe: ``put`` may be called from any thread; the owning task awaits ``get``."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._queue: asyncio.Queue[Event] = asyncio.Queue()

    def put(self, event: Event) -> None:
        # A request whose loop is gone (server shut down) has nobody left to tell.
        with contextlib.suppress(RuntimeError):
            self._loop.call_soon_threadsafe(self._queue.put_nowait, event)

    async def get(self) -> Event:
        return await self._queue.get()
