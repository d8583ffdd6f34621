"""Router: weighted sticky arms, load-aware picking, affinity, fallbacks, pins."""

from __future__ import annotations

import random
from collections import Counter

import pytest

from backends.protocol import Health, HealthState, Load
from gateway.config.schema import ExperimentConfig, ModelConfig, PoolMember
from routing.health import HealthBoard
from routing.load import LoadBoard
from routing.router import RouteContext, Router

OK = Health(HealthState.OK)


def make(members: list[PoolMember], *, seed: int = 1, affinity: str = "none", salt: str = "s",
         capacity: int = 4) -> Router:
    names = [m.backend for m in members]
    board = HealthBoard(names)
    for n in names:
        board.set_health(n, OK)
    model = ModelConfig(backends=tuple(members), affinity=affinity,  # type: ignore[arg-type]
                        experiment=ExperimentConfig(salt=salt))
    return Router({"m": model}, board, LoadBoard(dict.fromkeys(names, capacity)), rng=random.Random(seed))


def test_weighted_split_within_two_percent_over_10000_requests() -> None:
    r = make([PoolMember(backend="a", weight=70), PoolMember(backend="b", weight=20),
              PoolMember(backend="c", weight=10)])
    random_split = Counter(r.pick("m").backend for _ in range(10_000))  # type: ignore[union-attr]
    sticky_split = Counter(r.pick("m", RouteContext(sticky_key=f"user:{i}")).backend  # type: ignore[union-attr]
                           for i in range(10_000))
    for split in (random_split, sticky_split):
        assert abs(split["a"] / 10_000 - 0.70) <= 0.02
        assert abs(split["b"] / 10_000 - 0.20) <= 0.02
        assert abs(split["c"] / 10_000 - 0.10) <= 0.02


def test_same_key_always_lands_on_the_same_arm() -> None:
    r = make([PoolMember(backend="a"), PoolMember(backend="b")])
    for i in range(200):
        ctx = RouteContext(sticky_key=f"user:{i}")
        arms = {r.pick("m", ctx).arm for _ in range(20)}  # type: ignore[union-attr]
        assert len(arms) == 1


def test_changing_weights_moves_the_fewest_keys() -> None:
    before = make([PoolMember(backend="a", weight=50), PoolMember(backend="b", weight=50)])
    after = make([PoolMember(backend="a", weight=60), PoolMember(backend="b", weight=40)])
    keys = [RouteContext(sticky_key=f"user:{i}") for i in range(10_000)]
    moved = sum(before.arm_for("m", k) != after.arm_for("m", k) for k in keys)
    assert moved / 10_000 == pytest.approx(0.10, abs=0.015)
    # Every moved key went b -> a; none went the other way.
    assert all(after.arm_for("m", k) == "a" for k in keys if before.arm_for("m", k) != after.arm_for("m", k))


def test_salt_reshuffles_assignments() -> None:
    one = make([PoolMember(backend="a"), PoolMember(backend="b")], salt="exp-1")
    two = make([PoolMember(backend="a"), PoolMember(backend="b")], salt="exp-2")
    keys = [RouteContext(sticky_key=f"u{i}") for i in range(2000)]
    assert 0.4 < sum(one.arm_for("m", k) != two.arm_for("m", k) for k in keys) / 2000 < 0.6


def test_p2c_prefers_the_less_loaded_member_of_an_arm() -> None:
    r = make([PoolMember(backend="a", arm="x"), PoolMember(backend="b", arm="x")])
    for _ in range(3):
        r.load.acquire("a")
    assert {r.pick("m").backend for _ in range(100)} == {"b"}  # type: ignore[union-attr]
    r.load.set_engine_load("b", Load(waiting=10, running=4))
    assert {r.pick("m").backend for _ in range(100)} == {"a"}  # type: ignore[union-attr]
    r.load.set_engine_load("b", Load(kv_cache_usage=0.99))
    assert r.load.score("b") == pytest.approx(0.99)


def test_affinity_sticks_until_the_backend_is_saturated() -> None:
    r = make([PoolMember(backend=n, arm="x") for n in "abcd"], affinity="prefix", capacity=2)
    ctx = RouteContext(affinity_key="You are a helpful assistant. Long shared system prompt")
    first = r.pick("m", ctx)
    assert first is not None
    assert first.reason.endswith("+affinity")
    assert {r.pick("m", ctx).backend for _ in range(50)} == {first.backend}  # type: ignore[union-attr]
    r.load.acquire(first.backend)
    r.load.acquire(first.backend)  # 2 of 2 slots: saturated
    moved = r.pick("m", ctx)
    assert moved is not None
    assert moved.backend != first.backend
    assert "affinity-saturated" in moved.reason


def test_fallback_only_when_no_primary_can_serve() -> None:
    r = make([PoolMember(backend="a"), PoolMember(backend="f", role="fallback")])
    assert {r.pick("m").backend for _ in range(50)} == {"a"}  # type: ignore[union-attr]
    decision = r.pick("m", exclude=frozenset({"a"}))
    assert decision is not None
    assert (decision.backend, decision.reason) == ("f", "fallback")
    r.health.set_health("a", Health(HealthState.DOWN, "gone"))
    assert r.pick("m").backend == "f"  # type: ignore[union-attr]


def test_an_unavailable_arm_gives_way_to_another() -> None:
    r = make([PoolMember(backend="a"), PoolMember(backend="b")])
    r.health.set_health("a", Health(HealthState.STARTING, "loading"))
    decisions = [r.pick("m", RouteContext(sticky_key=f"k{i}")) for i in range(100)]
    assert {d.backend for d in decisions if d} == {"b"}
    assert any(d is not None and d.reason == "arm-unavailable" for d in decisions)


def test_shadows_get_no_regular_traffic_and_pins_are_honoured() -> None:
    r = make([PoolMember(backend="a"), PoolMember(backend="s", role="shadow")])
    assert {r.pick("m").backend for _ in range(50)} == {"a"}  # type: ignore[union-attr]
    assert r.shadows("m") == ["s"]
    assert r.pick("m", RouteContext(pinned="s")).backend == "s"  # type: ignore[union-attr]
    assert r.pick("m", RouteContext(pinned="zzz")) is None


def test_decision_header_lists_candidates_and_reason() -> None:
    r = make([PoolMember(backend="a", arm="x"), PoolMember(backend="b", arm="x")])
    header = r.pick("m").header(1)  # type: ignore[union-attr]
    assert header.startswith("backend=")
    assert "arm=x" in header
    assert "reason=weighted+p2c" in header
    assert "candidates=a:0.00,b:0.00" in header
