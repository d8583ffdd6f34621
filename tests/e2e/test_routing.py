"""Routing through a live gateway: load-aware shifts, ejection, fallbacks, retry budget, shadows, admin."""

from __future__ import annotations

import asyncio
import json
import time
from collections import Counter

import httpx
import pytest
from opentelemetry.sdk.metrics.export import InMemoryMetricReader

from backends.sim.engine import SimBackend
from gateway.auth import hash_key
from gateway.config import parse_config
from gateway.config.schema import TelemetryConfig
from observability.telemetry import Telemetry
from tests.support.configs import sim_config, sim_config_text
from tests.support.live import LiveServer
from tests.support.plugins import RecordingSim, registry
from tests.support.procs import lockgate
from tests.unit.observability.test_recorder import metric_points

CHAT = "/v1/chat/completions"
ADMIN = "admin-secret-1"
USER_KEY = "user-secret-1"


def body(content: str = "hello", **extra: object) -> dict[str, object]:
    return {"model": "sim-small", "messages": [{"role": "user", "content": content}], "max_tokens": 8, **extra}


@pytest.mark.anyio
async def test_traffic_shifts_away_from_a_slowed_backend() -> None:
    # Two members of one arm; "slow" takes 10x longer per token, so its in-flight count stays high.
    text = sim_config_text(backends={"fast": {"ttft_ms": 5, "tpot_ms": 2}, "slow": {"ttft_ms": 5, "tpot_ms": 20}})
    text = text.replace('backend = "fast", weight = 1.0', 'backend = "fast", weight = 1.0, arm = "pool"')
    text = text.replace('backend = "slow", weight = 1.0', 'backend = "slow", weight = 1.0, arm = "pool"')
    with LiveServer(parse_config(text)) as server:
        async with httpx.AsyncClient(base_url=server.url, timeout=30,
                                     limits=httpx.Limits(max_connections=32)) as client:
            sem = asyncio.Semaphore(16)

            async def one(i: int) -> str:
                async with sem:
                    resp = await client.post(CHAT, json=body(f"load {i}", max_tokens=10, ignore_eos=True))
                    assert resp.status_code == 200
                    return resp.headers["x-lockgate-backend"]

            served = Counter(await asyncio.gather(*(one(i) for i in range(160))))
    # Equal weights, but the fast backend frees its slots 10x sooner: it must take most of the traffic.
    assert served["fast"] > 2 * served["slow"], served


def test_failing_backend_is_ejected_and_readmitted_after_the_probe() -> None:
    config = sim_config(backends={"bad": {"fault": "fail_before_first_token", "ttft_ms": 1},
                                  "good": {"ttft_ms": 1, "tpot_ms": 1}},
                        limits={"max_attempts": 2}, routing={"eject_after": 3, "ejection_s": 2.0,
                                                             "health_interval_s": 0.1, "min_retries_per_s": 100})
    with LiveServer(config) as server:
        bad = server.runtime.backends["bad"]
        assert isinstance(bad, SimBackend)
        for _ in range(30):
            assert httpx.post(server.url + CHAT, json=body()).status_code == 200
            if server.runtime.health.snapshot()["bad"] == "ejected":
                break
        assert server.runtime.health.snapshot()["bad"] == "ejected"
        tried = bad.started_requests
        for _ in range(20):
            assert httpx.post(server.url + CHAT, json=body()).headers["x-lockgate-backend"] == "good"
        assert bad.started_requests == tried  # ejected: no traffic at all
        # After the ejection window, the health probe readmits it and it is tried again.
        assert server.wait_for(lambda: server.runtime.health.available("bad"), timeout=5)
        for _ in range(20):
            httpx.post(server.url + CHAT, json=body())
        assert bad.started_requests > tried


def test_no_fallback_after_the_first_token() -> None:
    config = sim_config(backends={"a": {"ttft_ms": 1, "tpot_ms": 1}, "b": {"ttft_ms": 1, "tpot_ms": 1}},
                        limits={"max_attempts": 3})
    with LiveServer(config) as server:
        resp = httpx.post(server.url + CHAT, json=body("[[sim:fail_after=2]]", stream=True, max_tokens=20))
        assert resp.status_code == 200
        assert '"error"' in resp.text
        sims = [b for b in server.runtime.backends.values() if isinstance(b, SimBackend)]
        assert sum(s.started_requests for s in sims) == 1


def test_retry_budget_caps_attempts_when_every_backend_fails() -> None:
    config = sim_config(
        backends={n: {"fault": "fail_before_first_token", "ttft_ms": 1} for n in ("a", "b", "c")},
        limits={"max_attempts": 3},
        routing={"retry_budget_ratio": 0.0, "min_retries_per_s": 0.2, "eject_after": 1000,
                 "error_rate_threshold": 1.0, "error_rate_window": 1000})
    reader = InMemoryMetricReader()
    telemetry = Telemetry.build(TelemetryConfig(), metric_readers=[reader])
    with LiveServer(config, telemetry=telemetry) as server:
        for _ in range(10):
            assert httpx.post(server.url + CHAT, json=body()).status_code == 503
        attempts = sum(b.started_requests for b in server.runtime.backends.values())  # type: ignore[attr-defined]
    # 10 first attempts + a budget of 0.2/s over a 10 s window = 2 retries, not 10 x 3 = 30 attempts.
    assert attempts == 12
    retries = {dict(p.attributes)["lockgate.outcome"]: p.value  # type: ignore[attr-defined]
               for p in metric_points(reader)["lockgate.routing.retries"]}
    # The first request spends both retries (3 attempts); each of the other 9 is refused its retry.
    assert retries == {"allowed": 2, "budget_exhausted": 9}


def shadow_server(fraction: float = 1.0) -> LiveServer:
    text = f"""
[auth]
enabled = true
[[auth.keys]]
name = "user"
sha256 = "{hash_key(USER_KEY)}"
[[auth.admin_keys]]
name = "ops"
sha256 = "{hash_key(ADMIN)}"
[models.sim-small]
backends = [{{ backend = "primary" }}, {{ backend = "candidate", role = "shadow" }}]
experiment = {{ shadow_fraction = {fraction} }}
[backends.primary]
kind = "recording-sim"
options = {{ ttft_ms = 5, tpot_ms = 2, eos_min_tokens = 5, eos_max_tokens = 5 }}
[backends.candidate]
kind = "recording-sim"
options = {{ ttft_ms = 30, tpot_ms = 6, eos_min_tokens = 9, eos_max_tokens = 9 }}
"""
    reg = registry()
    return LiveServer(parse_config(text, registry=reg), registry=reg)


def test_shadow_gets_the_same_request_and_the_client_only_the_primary() -> None:
    auth = {"Authorization": f"Bearer {USER_KEY}"}
    with shadow_server() as server:
        for i in range(6):
            resp = httpx.post(server.url + CHAT, headers=auth, json={
                "model": "sim-small", "messages": [{"role": "user", "content": f"shadow {i}"}], "max_tokens": 20,
                "temperature": 0.3, "top_p": 0.9, "seed": 11, "stream": True, "stop": ["zzz"], "top_k": 4})
            assert resp.headers["x-lockgate-backend"] == "primary"
            content = [line for line in resp.text.splitlines() if '"content":"' in line and '"role"' not in line]
            assert len(content) == 5  # the primary's 5 tokens, never the shadow's 9
        primary, candidate = server.runtime.backends["primary"], server.runtime.backends["candidate"]
        assert isinstance(primary, RecordingSim)
        assert isinstance(candidate, RecordingSim)
        assert server.wait_for(lambda: len(server.runtime.experiments.pairs) == 6, timeout=5)
        shadows = {r.request_id: r for r in candidate.received}
        assert len(shadows) == len(primary.received) == 6
        for p in primary.received:
            s = shadows[p.request_id + "-shadow-candidate"]
            for field in p.__struct_fields__:
                if field != "request_id":
                    assert getattr(p, field) == getattr(s, field), field

        readout = httpx.get(server.url + "/v1/lockgate/experiments",
                            headers={"Authorization": f"Bearer {ADMIN}"}).json()
    pair = readout["models"]["sim-small"]["shadows"]["primary->candidate"]
    assert pair["pairs"] == 6
    assert pair["primary"]["completion_tokens"] == 30
    assert pair["shadow"]["completion_tokens"] == 54
    assert pair["primary"]["ttft"]["p50"] < pair["shadow"]["ttft"]["p50"]
    ttft = pair["difference"]["ttft"]
    assert ttft["n"] == 6
    assert ttft["mean"] > 0.015  # the shadow's TTFT is 25 ms longer by configuration
    assert readout["models"]["sim-small"]["arms"]["primary"]["requests"] == 6


def test_admin_routes_and_keys_are_separate_from_inference() -> None:
    with shadow_server(fraction=0.0) as server:
        url = server.url
        as_user = {"Authorization": f"Bearer {USER_KEY}"}
        as_admin = {"Authorization": f"Bearer {ADMIN}"}
        assert httpx.get(url + "/v1/lockgate/experiments", headers=as_user).status_code == 401
        assert httpx.get(url + "/v1/lockgate/experiments").status_code == 401
        assert httpx.get(url + "/v1/lockgate/experiments", headers=as_admin).status_code == 200
        assert httpx.post(url + CHAT, headers=as_admin, json=body()).status_code == 401
        # Pinning a backend needs an admin key next to the inference key.
        pin = {"x-lockgate-pin-backend": "candidate"}
        assert httpx.post(url + CHAT, headers={**as_user, **pin}, json=body()).status_code == 401
        pinned = httpx.post(url + CHAT, headers={**as_user, **pin, "x-lockgate-admin-key": ADMIN}, json=body())
        assert pinned.status_code == 200
        assert pinned.headers["x-lockgate-backend"] == "candidate"
        assert "reason=pinned" in pinned.headers["x-lockgate-route"]
        unknown = httpx.post(url + CHAT, headers={**as_user, "x-lockgate-pin-backend": "nope",
                                                  "x-lockgate-admin-key": ADMIN}, json=body())
        assert unknown.status_code == 400


def test_sticky_user_stays_on_one_arm_end_to_end() -> None:
    config = sim_config(backends={"a": {"ttft_ms": 1, "tpot_ms": 1}, "b": {"ttft_ms": 1, "tpot_ms": 1}})
    with LiveServer(config) as server:
        for user in ("alice", "bob", "carol", "dave"):
            served = {httpx.post(server.url + CHAT, json=body(user=user)).headers["x-lockgate-backend"]
                      for _ in range(8)}
            assert len(served) == 1
        sessions = {httpx.post(server.url + CHAT, json=body(), headers={"x-session-id": "s-42"})
                    .headers["x-lockgate-backend"] for _ in range(8)}
        assert len(sessions) == 1


def test_gateway_with_a_fast_health_poller_shuts_down_promptly() -> None:
    # Regression: asyncio.wait_for on Python 3.11 could swallow the poller's cancellation, hanging shutdown.
    for _ in range(3):
        with LiveServer(sim_config(routing={"health_interval_s": 0.01})) as server:
            assert httpx.get(server.url + "/readyz").status_code == 200
            t0 = time.monotonic()
        assert time.monotonic() - t0 < 5


def test_experiments_show_cli_prints_arms_and_pairs() -> None:
    with shadow_server() as server:
        for i in range(4):
            httpx.post(server.url + CHAT, headers={"Authorization": f"Bearer {USER_KEY}"}, json=body(f"c{i}"))
        assert server.wait_for(lambda: len(server.runtime.experiments.pairs) == 4, timeout=5)
        table = lockgate("experiments", "show", "--url", server.url, "--admin-key", ADMIN)
        raw = lockgate("experiments", "show", "--url", server.url, "--json", env={"LOCKGATE_ADMIN_KEY": ADMIN})
        denied = lockgate("experiments", "show", "--url", server.url, "--admin-key", USER_KEY)
    assert table.returncode == 0, table.stderr
    assert "model sim-small" in table.stdout
    assert "shadow primary->candidate: 4 pairs" in table.stdout
    assert "ttft: shadow - primary =" in table.stdout
    assert json.loads(raw.stdout)["sim-small"]["arms"]["primary"]["requests"] == 4
    assert denied.returncode == 1
    assert "401" in denied.stderr
