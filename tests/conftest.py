from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.support.configs import sim_config
from tests.support.live import LiveServer


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
def live() -> Iterator[LiveServer]:
    """A gateway serving model ``sim-small`` on one fast simulated backend, auth off."""
    with LiveServer(sim_config()) as server:
        yield server
