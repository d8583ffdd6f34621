"""Hands events from an engine thread to the asyncio tasks that serve the requests.

The engine thread buffers events and delivers a whole step's worth with one ``call_soon_threadsafe`` per event
loop (``flush``). One wake-up per token per request would make the event loop thread fight the engine thread for
the GIL on every token; at batch 32 on a GPU that cost more than the model step itself.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterable

from backends.events import Event


class EventSink:
    """``put`` and ``flush`` are called from the engine thread; the owning task awaits ``get``."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self._queue: asyncio.Queue[Event] = asyncio.Queue()
        self._pending: list[Event] = []

    def put(self, event: Event) -> None:
        self._pending.append(event)

    def take_pending(self) -> list[Event]:
        pending, self._pending = self._pending, []
        return pending

    def deliver(self, events: list[Event]) -> None:
        """On the loop's thread."""
        for event in events:
            self._queue.put_nowait(event)

    async def get(self) -> Event:
        return await self._queue.get()


def flush(sinks: Iterable[EventSink]) -> None:
    """Deliver every buffered event, one loop call per event loop."""
    by_loop: dict[asyncio.AbstractEventLoop, list[tuple[EventSink, list[Event]]]] = {}
    for sink in sinks:
        events = sink.take_pending()
        if events:
            by_loop.setdefault(sink.loop, []).append((sink, events))
    for loop, batch in by_loop.items():
        # A request whose loop is gone (server shut down) has nobody left to tell.
        with contextlib.suppress(RuntimeError):
            loop.call_soon_threadsafe(_deliver_all, batch)


def _deliver_all(batch: list[tuple[EventSink, list[Event]]]) -> None:
    for sink, events in batch:
        sink.deliver(events)
