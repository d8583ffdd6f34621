"""Routing: weights, exclusion, passive ejection with backoff, readmission."""

from __future__ import annotations

import random
from collections import Counter

from backends.protocol import Health, HealthState
from gateway.config.schema import ModelConfig, PoolMember
from routing.health import HealthBoard
from routing.router import Router

OK = Health(HealthState.OK)


def board(names: list[str], now: list[float]) -> HealthBoard:
    b = HealthBoard(names, eject_after=3, base_ejection_s=10, clock=lambda: now[0])
    for n in names:
        b.set_health(n, OK)
    return b


def test_weighted_split_follows_weights() -> None:
    now = [0.0]
    model = ModelConfig(backends=(PoolMember(backend="a", weight=3), PoolMember(backend="b", weight=1)))
    router = Router({"m": model}, board(["a", "b"], now), rng=random.Random(1))
    counts = Counter(router.pick("m").backend for _ in range(8000))  # type: ignore[union-attr]
    assert abs(counts["a"] / 8000 - 0.75) < 0.02


def test_exclusion_and_retry_same_when_alone() -> None:
    now = [0.0]
    model = ModelConfig(backends=(PoolMember(backend="a"), PoolMember(backend="b")))
    router = Router({"m": model}, board(["a", "b"], now))
    assert all(router.pick("m", frozenset({"a"})).backend == "b" for _ in range(50))  # type: ignore[union-attr]
    again = router.pick("m", frozenset({"a", "b"}))
    assert again is not None
    assert again.reason == "weighted-retry-same"


def test_consecutive_failures_eject_then_readmit_with_backoff() -> None:
    now = [0.0]
    b = board(["a"], now)
    for _ in range(3):
        b.record_failure("a")
    assert not b.available("a")
    now[0] = 10.1
    assert b.available("a")
    for _ in range(3):
        b.record_failure("a")
    now[0] = 20.2
    assert not b.available("a")  # second ejection in a row lasts 20 s
    now[0] = 30.2
    assert b.available("a")
    b.record_success("a")
    for _ in range(3):
        b.record_failure("a")
    now[0] = 40.3
    assert b.available("a")  # a success reset the backoff


def test_starting_or_down_backends_get_no_traffic() -> None:
    now = [0.0]
    b = board(["a", "b"], now)
    b.set_health("a", Health(HealthState.STARTING, "loading"))
    model = ModelConfig(backends=(PoolMember(backend="a"), PoolMember(backend="b")))
    router = Router({"m": model}, b)
    assert {router.pick("m").backend for _ in range(50)} == {"b"}  # type: ignore[union-attr]
    b.set_health("b", Health(HealthState.DOWN, "gone"))
    assert router.pick("m") is None
