"""Deadlines on a byte stream: one until the first token, another between chunks once tokens flow."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable


class StreamTimeout(Exception):
    def __init__(self, phase: str, seconds: float) -> None:
        super().__init__(f"no {phase} from the engine within {seconds:g} s")
        self.phase = phase
        self.seconds = seconds


async def timed(chunks: AsyncIterator[bytes], *, ttft_s: float, idle_s: float,
                flowing: Callable[[], bool]) -> AsyncIterator[bytes]:
    """Re-yield ``chunks``; raise StreamTimeout when one read waits too long. ``flowing()`` says whether a
    token has arrived, switching from the TTFT deadline (which covers queueing and prefill) to the idle one."""
    it = aiter(chunks)
    while True:
        first = not flowing()
        limit = ttft_s if first else idle_s
        try:
            async with asyncio.timeout(limit):
                chunk = await anext(it)
        except StopAsyncIteration:
            return
        except TimeoutError:
            raise StreamTimeout("first token" if first else "chunk", limit) from None
        yield chunk
