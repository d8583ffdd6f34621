from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from .harness import Deployment, ttl_checked


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
def deployment(tmp_path: Path) -> Iterator[Deployment]:
    """Processes and keys of one test. Afterwards (invariant 9): every key the test left has a TTL."""
    with ttl_checked(Deployment(tmp_path)) as dep:
        yield dep
