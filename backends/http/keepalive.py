"""Keeping an engine connection reusable after its stream has given us everything we need."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

# The rest of a finished stream is the chunked body's terminator, written in the engine's next event-loop turn:
# microseconds when idle, a few milliseconds on a saturated API server. An engine that keeps the stream open past
# this costs us one closed connection, never a hung worker.
DRAIN_LIMIT_S = 1.0


async def drain(chunks: AsyncIterator[bytes], limit_s: float = DRAIN_LIMIT_S) -> bool:
    """Read ``chunks`` to their end (at most ``limit_s``); True when the end came.

    httpx returns a connection to its pool only when the response was read to its end: closing it after
    ``[DONE]`` but before the terminator closes the connection, and the next request pays a new one. An engine's
    API server is often the saturated part, and a new connection per request costs it an accept, a protocol
    object and a teardown, and the request at least one more turn of its event loop before it is even read.
    """
    try:
        async with asyncio.timeout(limit_s):
            async for _ in chunks:
                pass
    except Exception:  # a timeout, a broken stream: the connection is closed as before, nothing else is lost
        return False
    return True

