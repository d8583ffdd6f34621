"""Passive ejection (consecutive failures, error rate) with backoff; a probe readmits."""

from __future__ import annotations

from backends.protocol import Health, HealthState
from routing.health import Admission, HealthBoard

OK = Health(HealthState.OK)
DOWN = Health(HealthState.DOWN, "probe failed")


def board(now: list[float], **kw: float) -> HealthBoard:
    b = HealthBoard(["a"], eject_after=3, base_ejection_s=10, max_ejection_s=25, clock=lambda: now[0], **kw)  # type: ignore[arg-type]
    b.set_health("a", OK)
    return b


def test_ejected_after_consecutive_failures_and_readmitted_by_a_successful_probe() -> None:
    now = [0.0]
    b = board(now)
    b.record_failure("a")
    b.record_failure("a")
    assert b.available("a")
    b.record_failure("a")
    assert b.admission("a") is Admission.EJECTED
    assert not b.available("a")
    b.set_health("a", OK)  # a probe inside the ejection window changes nothing
    assert not b.available("a")
    now[0] = 10.5
    assert b.admission("a") is Admission.PROBING
    assert not b.available("a")  # no traffic until a probe succeeds
    b.set_health("a", DOWN)
    assert not b.available("a")
    b.set_health("a", OK)
    assert b.available("a")


def test_backoff_doubles_then_caps_and_success_resets_it() -> None:
    now = [0.0]
    b = board(now)
    for window in (10, 20, 25, 25):
        start = now[0]
        for _ in range(3):
            b.record_failure("a")
        now[0] = start + window - 0.1
        b.set_health("a", OK)
        assert not b.available("a")
        now[0] = start + window + 0.1
        b.set_health("a", OK)
        assert b.available("a")
    b.record_success("a")
    start = now[0]
    for _ in range(3):
        b.record_failure("a")
    now[0] = start + 10.1
    b.set_health("a", OK)
    assert b.available("a")


def test_error_rate_ejects_without_consecutive_failures() -> None:
    now = [0.0]
    b = board(now, error_rate=0.5, window=10)
    for i in range(10):
        if i % 2:
            b.record_failure("a")
        else:
            b.record_success("a")
    assert b.admission("a") is Admission.EJECTED


def test_starting_and_down_backends_are_unavailable() -> None:
    now = [0.0]
    b = board(now)
    b.set_health("a", Health(HealthState.STARTING, "loading"))
    assert not b.available("a")
    assert b.snapshot() == {"a": "starting"}
