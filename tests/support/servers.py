"""ASGI apps (protocol replicas, the gateway) served by uvicorn in a thread, and a driver for adapters."""

from __future__ import annotations

import asyncio
import threading
import time
from typing import Any

import uvicorn

from tests.support.procs import free_port


class ServerThread:
    """An ASGI app on a real socket, so streaming, disconnects and connection cuts behave as in production."""

    def __init__(self, app: Any, port: int | None = None) -> None:
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=self.port, log_level="critical",
                                                    lifespan="on", loop="asyncio"))
        self._thread = threading.Thread(target=self.server.run, daemon=True)

    def start(self) -> ServerThread:
        self._thread.start()
        deadline = time.monotonic() + 20
        while not self.server.started:
            if time.monotonic() > deadline or not self._thread.is_alive():
                raise RuntimeError("server did not start")
            time.sleep(0.01)
        return self

    def stop(self) -> None:
        self.server.should_exit = True
        self._thread.join(10)


def drive(backend: Any, request: Any, *, start: bool = False) -> list[Any]:
    """Run an adapter's generate() to the end on a fresh event loop; close() (and start(), if asked) around it."""

    async def go() -> list[Any]:
        if start:
            await backend.start()
        try:
            return [e async for e in backend.generate(request)]
        finally:
            await backend.close()

    return asyncio.run(go())


async def until(probe: Any, predicate: Any, within_s: float = 5.0) -> Any:
    """Await ``probe()`` until ``predicate(value)`` holds (or the timeout passes); return the last value."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within_s
    value = await probe()
    while not predicate(value) and loop.time() < deadline:
        await asyncio.sleep(0.02)
        value = await probe()
    return value
