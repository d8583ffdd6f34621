"""A real gateway (uvicorn + Litestar + runtime) on a free port, in a background thread with its own loop.

Tests reach the runtime object to observe dispatch state (running jobs, simulator counters) directly.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable
from typing import Any, TypeVar

import uvicorn

from gateway.config import Config
from gateway.runtime import Runtime
from gateway.server import uvicorn_config

T = TypeVar("T")


class LiveServer:
    def __init__(self, config: Config, environ: dict[str, str] | None = None, **runtime_kwargs: Any) -> None:
        self.runtime = Runtime(config, environ=environ or {}, **runtime_kwargs)
        self._server = uvicorn.Server(uvicorn_config(self.runtime, "127.0.0.1", 0))
        self._server.config.timeout_graceful_shutdown = 1
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread = threading.Thread(target=self._run, daemon=True, name="live-gateway")
        self.port = 0

    def _run(self) -> None:
        self._loop = asyncio.new_event_loop()
        self._loop.run_until_complete(self._server.serve())

    def __enter__(self) -> LiveServer:
        self._thread.start()
        deadline = time.monotonic() + 20
        while not self._server.started:
            if time.monotonic() > deadline or not self._thread.is_alive():
                raise RuntimeError("gateway did not start")
            time.sleep(0.01)
        self.port = self._server.servers[0].sockets[0].getsockname()[1]
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.should_exit = True
        self._thread.join(timeout=15)
        if self._thread.is_alive():
            raise RuntimeError("the gateway did not shut down within 15 s")

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def call(self, fn: Callable[[], Any]) -> Any:
        """Run a coroutine function on the server's loop (to read async state safely)."""
        assert self._loop is not None
        return asyncio.run_coroutine_threadsafe(fn(), self._loop).result(timeout=10)

    def wait_for(self, predicate: Callable[[], bool], timeout: float = 5.0, interval: float = 0.01) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if predicate():
                return True
            time.sleep(interval)
        return predicate()
