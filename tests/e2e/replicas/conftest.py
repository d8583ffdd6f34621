"""Protocol replicas on real sockets, one per test, so streaming, disconnects and cut connections are real."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest

from tests.support.servers import ServerThread, drive


@pytest.fixture
def serve() -> Iterator[Callable[[Any], ServerThread]]:
    started: list[ServerThread] = []

    def _serve(app: Any) -> ServerThread:
        server = ServerThread(app).start()
        started.append(server)
        return server

    yield _serve
    for server in started:
        server.stop()


@pytest.fixture(name="drive")
def drive_fixture() -> Callable[..., list[Any]]:
    return drive
