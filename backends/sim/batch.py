"""A batch with a fixed number of sequence slots; requests beyond it wait, as in an engine's scheduler."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager


class Batch:
    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self.running = 0
        self.waiting = 0
        self._changed = asyncio.Condition()

    @asynccontextmanager
    async def slots(self, k: int) -> AsyncIterator[None]:
        k = min(k, self.capacity)
        async with self._changed:
            self.waiting += 1
            try:
                await self._changed.wait_for(lambda: self.running + k <= self.capacity)
            finally:
                self.waiting -= 1
            self.running += k
        try:
            yield
        finally:
            # Shielded so a cancelled request still returns its slots.
            await asyncio.shield(self._release(k))

    async def _release(self, k: int) -> None:
        async with self._changed:
            self.running -= k
            self._changed.notify_all()
