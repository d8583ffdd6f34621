from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from .harness import Deployment, ttl_checked


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Any:
    """Keeps each phase's report on the test item, so a fixture's teardown knows whether the test failed."""
    report = yield
    setattr(item, f"report_{report.when}", report)
    return report


@pytest.fixture
def deployment(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[Deployment]:
    """Processes and keys of one test. Afterwards (invariant 9): every key the test left has a TTL."""
    with ttl_checked(Deployment(tmp_path)) as dep:
        yield dep
        call = getattr(request.node, "report_call", None)
        if call is not None and call.failed:
            # The processes' own logs, in the failure's report: pytest's tmp_path (where they are) keeps only the
            # last three sessions, so a failure seen once in a long run is otherwise gone by the time it is read.
            for proc in dep.procs:
                print(f"--- {proc.log.name} (last 60 lines)\n" + "\n".join(proc.output().splitlines()[-60:]))
