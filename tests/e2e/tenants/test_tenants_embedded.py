"""Tenants with the embedded dispatch (one ``lockgate serve``-like process; keys in a keys file): keys from the
admin API used through the real openai SDK, limits with OpenAI's 429s and headers, the TPM cut mid-stream,
concurrency slots released on disconnect, usage and metrics, fair queueing."""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import openai
import pytest

from gateway.auth import hash_key
from tests.support.configs import sim_config
from tests.support.live import LiveServer

from .helpers import ADMIN_KEY, PROMPT_ESTIMATE, RESET, Admin, body, chat, flood_and_trickle, sdk

CONFIG_KEY = "sk-config-key-0123456789"


def server(tmp_path: Path, sim: dict[str, object] | None = None, **tenants: object) -> LiveServer:
    config = sim_config(backends={"sim": {"ttft_ms": 5, "tpot_ms": 2, **(sim or {})}},
                        models={"sim-small": [("sim", 1.0)], "sim-other": [("sim", 1.0)]},
                        auth_keys=[("cfg", hash_key(CONFIG_KEY))], admin_keys=[("ops", hash_key(ADMIN_KEY))],
                        tenants={"keys_file": str(tmp_path / "keys.toml"), "key_cache_s": 0.5, **tenants})
    return LiveServer(config)


@pytest.fixture
def live(tmp_path: Path) -> Iterator[LiveServer]:
    with server(tmp_path) as s:
        yield s


def test_api_key_works_through_the_sdk_and_is_stored_only_as_a_hash(live: LiveServer, tmp_path: Path) -> None:
    admin = Admin(live.url)
    key_id, secret = admin.create(name="search")
    assert secret.startswith("lg-")
    reply = sdk(live.url, secret).chat.completions.create(**chat("sim-small"))
    assert reply.choices[0].message.content
    stored = (tmp_path / "keys.toml").read_text()
    assert secret not in stored
    assert hash_key(secret) in stored
    # The config's keys keep working next to the API's.
    assert sdk(live.url, CONFIG_KEY).models.list().data[0].id == "sim-small"  # (all models: no list)
    with pytest.raises(openai.AuthenticationError):
        sdk(live.url, secret[:-1] + ("x" if secret[-1] != "x" else "y")).models.list()
    # The listing never shows a secret or hash.
    listing = admin.call("GET", "/keys").text
    assert secret not in listing
    assert hash_key(secret) not in listing
    assert key_id in listing


def test_admin_routes_refuse_inference_keys_and_inference_refuses_admin_keys(live: LiveServer) -> None:
    _, secret = Admin(live.url).create()
    for key in (secret, CONFIG_KEY):
        r = Admin(live.url, key).call("GET", "/keys")
        assert r.status_code == 401
        assert r.json()["error"]["code"] == "invalid_admin_key"
    with pytest.raises(openai.AuthenticationError):
        sdk(live.url, ADMIN_KEY).chat.completions.create(**chat("sim-small"))


def test_rpm_limit_429_in_openai_shape_with_headers_the_sdk_raises_on(live: LiveServer) -> None:
    _, secret = Admin(live.url).create(rpm=2, tpm=10_000)
    client = sdk(live.url, secret)
    first = client.chat.completions.with_raw_response.create(**chat("sim-small"))
    h = first.headers
    assert (h["x-ratelimit-limit-requests"], h["x-ratelimit-remaining-requests"]) == ("2", "1")
    assert h["x-ratelimit-limit-tokens"] == "10000"
    assert int(h["x-ratelimit-remaining-tokens"]) < 10_000
    assert re.match(RESET, h["x-ratelimit-reset-requests"])
    assert re.match(RESET, h["x-ratelimit-reset-tokens"])
    client.chat.completions.create(**chat("sim-small"))
    with pytest.raises(openai.RateLimitError) as err:
        client.chat.completions.create(**chat("sim-small"))
    resp = err.value.response
    body = resp.json()["error"]
    assert (body["type"], body["code"]) == ("requests", "rate_limit_exceeded")
    assert set(body) == {"message", "type", "param", "code"}
    # 2 a minute: the next request fits in (just under) 30 s.
    assert 25 <= int(resp.headers["retry-after"]) <= 30
    assert resp.headers["x-ratelimit-remaining-requests"] == "0"
    reset = resp.headers["x-ratelimit-reset-requests"]
    assert re.match(r"^[45]\d(\.\d+)?s$|^1m0s$", reset), reset  # the bucket is full again in about a minute


def test_tokens_per_minute_cut_a_stream_within_one_chunk(tmp_path: Path) -> None:
    with server(tmp_path, sim={"tokens_per_chunk": 2, "tpot_ms": 1}, lease_tokens=8) as live:
        _, secret = Admin(live.url).create(tpm=60)
        stream = sdk(live.url, secret).chat.completions.create(**chat("sim-small", max_tokens=200), stream=True)
        chunks = 0

        def consume() -> None:
            nonlocal chunks
            for chunk in stream:
                chunks += bool(chunk.choices and chunk.choices[0].delta.content)

        with pytest.raises(openai.APIError) as err:  # the SDK raises on the error event that ends the stream
            consume()
        assert "tokens per min" in str(err.value)
        # 60 a minute, minus the prompt's estimate (9): the stream got its budget, give or take one chunk (2
        # tokens) and what refilled while it ran (1 a second), far from the 200 it asked for.
        budget = 60 - PROMPT_ESTIMATE
        assert budget - 2 <= 2 * chunks <= budget + 2 + 2
        # The budget is spent: the next request waits.
        with pytest.raises(openai.RateLimitError) as refused:
            sdk(live.url, secret).chat.completions.create(**chat("sim-small"))
        assert refused.value.response.json()["error"]["type"] == "tokens"


def test_concurrency_slot_released_when_the_client_disconnects(tmp_path: Path) -> None:
    with server(tmp_path, sim={"tpot_ms": 50}) as live:
        _, secret = Admin(live.url).create(max_concurrent=1)
        headers = {"Authorization": f"Bearer {secret}"}
        with httpx.stream("POST", f"{live.url}/v1/chat/completions", headers=headers, timeout=30,
                          json=body("sim-small", max_tokens=200, stream=True)) as resp:
            lines = resp.iter_lines()  # kept: a dropped iterator closes the response
            next(lines)
            busy = httpx.post(f"{live.url}/v1/chat/completions", headers=headers, json=body("sim-small"))
            assert busy.status_code == 429
            assert busy.json()["error"]["message"].startswith("Too many concurrent requests")
            assert busy.headers["retry-after"] == "1"
        # Disconnected mid-stream: the slot comes back.
        deadline = time.monotonic() + 3
        while True:
            r = httpx.post(f"{live.url}/v1/chat/completions", headers=headers, json=body("sim-small"))
            if r.status_code == 200 or time.monotonic() > deadline:
                break
            time.sleep(0.05)
        assert r.status_code == 200, r.text


def test_model_list_priority_and_usage_per_key_and_model(live: LiveServer) -> None:
    admin = Admin(live.url)
    key_id, secret = admin.create(name="acct", models=["sim-small"], priority=1)
    client = sdk(live.url, secret)
    for _ in range(3):
        client.chat.completions.create(**chat("sim-small", max_tokens=5))
    assert [m.id for m in client.models.list().data] == ["sim-small"]
    with pytest.raises(openai.NotFoundError):
        client.chat.completions.create(**chat("sim-other"))
    other_id, other = admin.create(name="elsewhere", models=["sim-small"])
    assert admin.call("PATCH", f"/keys/{other_id}", json={"models": []}).json()["models"] == []
    assert len(sdk(live.url, other).models.list().data) == 2
    usage = {}
    deadline = time.monotonic() + 3
    while time.monotonic() < deadline:
        usage = admin.call("GET", f"/keys/{key_id}/usage", params={"days": 1}).json()
        if usage["totals"] and usage["totals"][0]["requests"] == 3:
            break
        time.sleep(0.05)
    total = usage["totals"][0]
    assert (total["model"], total["requests"], total["completion_tokens"], total["errors"]) == ("sim-small", 3, 15, 0)
    assert total["prompt_tokens"] > 0
    metrics = httpx.get(f"{live.url}/metrics").text
    line = next(m for m in metrics.splitlines() if m.startswith("lockgate_tenant_requests") and key_id in m)
    assert 'lockgate_key_name="acct"' in line
    assert secret not in metrics
    assert hash_key(secret) not in metrics
    # Revoked: refused at once by the gateway that revoked it; the record and usage stay readable.
    assert admin.call("DELETE", f"/keys/{key_id}").json()["revoked_at"] is not None
    with pytest.raises(openai.AuthenticationError):
        client.models.list()
    assert admin.call("GET", f"/keys/{key_id}/usage").status_code == 200
    assert admin.call("GET", "/keys/nope").status_code == 404
    assert admin.call("DELETE", "/keys/cfg").status_code == 409


def test_fair_queueing_a_trickle_is_not_starved_by_a_flood(tmp_path: Path) -> None:
    with server(tmp_path, sim={"ttft_ms": 20, "tpot_ms": 10, "max_concurrency": 1, "batch_capacity": 1}) as live:
        admin = Admin(live.url)
        _, flood = admin.create(name="flood")
        _, trickle = admin.create(name="trickle")
        dispatcher = live.runtime.dispatcher
        flood_ttft, trickle_ttft = flood_and_trickle(
            live.url, "sim-small", flood, trickle, queued=lambda: dispatcher.queued("sim") >= 8)  # type: ignore[union-attr]
    flood_ttft.sort()
    # Served one at a time, the flood's later requests queue behind each other; the trickle's each wait for
    # about one flood job (the one running), not for the flood's queue.
    median_flood = flood_ttft[len(flood_ttft) // 2]
    assert max(trickle_ttft) < 0.35 * median_flood, (trickle_ttft, flood_ttft)
