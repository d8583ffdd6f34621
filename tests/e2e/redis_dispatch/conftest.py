from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from .harness import Deployment


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
def deployment(tmp_path: Path) -> Iterator[Deployment]:
    """Processes and keys of one test. Afterwards (invariant 9): every key the test left has a TTL."""
    dep = Deployment(tmp_path)
    try:
        yield dep
    finally:
        dep.close()
        try:
            assert dep.keys_without_ttl() == [], "lockgate keys without a TTL"
        finally:
            dep.cleanup()
