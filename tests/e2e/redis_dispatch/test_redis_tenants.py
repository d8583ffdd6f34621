"""Tenants with the Redis dispatch: real ``lockgate gateway`` processes sharing one Redis (and ``lockgate
worker``s), keys from the admin API, the real openai SDK. Limits hold across gateways; keys are stored hashed;
a revoked key is refused everywhere within ``tenants.key_cache_s``; concurrency slots come back after a
worker's or a gateway's death; a TPM budget cuts a stream; a trickle is not starved by a flood."""

from __future__ import annotations

import hashlib
import re
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import openai
import pytest

from tests.e2e.tenants.helpers import ADMIN_KEY, PROMPT_ESTIMATE, RESET, Admin, body, chat, flood_and_trickle, sdk

from .harness import Deployment, wait_until

FAST = {"ttft_ms": 5, "tpot_ms": 2}


def config(deployment: Deployment, sim: dict[str, object] | None = None, concurrency: int | None = None,
           busy: bool = False, **tenants: object) -> Path:
    """``busy``: the gateway will be flooded; its health probe (which times out after the health interval)
    gets more time than the harness's 0.5 s, or a loaded gateway fails its own probe and answers 503."""
    return deployment.config(sim={**FAST, **(sim or {})}, concurrency=concurrency, admin_key=ADMIN_KEY,
                             tenants={"key_cache_s": 1.0, **tenants},
                             routing={"health_interval_s": 2.0} if busy else None)


def post(url: str, secret: str, **kwargs: object) -> httpx.Response:
    return httpx.post(f"{url}/v1/chat/completions", json=body("m", **kwargs),  # type: ignore[arg-type]
                      headers={"Authorization": f"Bearer {secret}"}, timeout=30)


def test_limits_hold_across_two_gateways_and_keys_are_stored_hashed(deployment: Deployment) -> None:
    cfg = config(deployment, busy=True)
    deployment.worker(cfg)
    gw1, gw2 = deployment.gateway(cfg), deployment.gateway(cfg)
    key_id, secret = Admin(gw1.url).create(name="burst", rpm=6)
    # Created on one gateway, known to the other (Redis is the store).
    assert sdk(gw2.url, secret).models.list().data[0].id == "m"
    t0 = time.monotonic()
    with ThreadPoolExecutor(16) as pool:
        replies = list(pool.map(lambda i: post((gw1, gw2)[i % 2].url, secret), range(16)))
    elapsed = time.monotonic() - t0
    ok = [r for r in replies if r.status_code == 200]
    refused = [r for r in replies if r.status_code == 429]
    # 6 a minute for both gateways together (plus what refilled while the burst ran: 0.1 a second).
    assert 6 <= len(ok) <= 6 + int(elapsed * 6 / 60) + 1, [r.status_code for r in replies]
    assert len(ok) + len(refused) == 16
    assert {r.url.port for r in ok} == {gw1.port, gw2.port} or len(ok) < 2
    r = refused[0]
    assert r.json()["error"]["code"] == "rate_limit_exceeded"
    assert 1 <= int(r.headers["retry-after"]) <= 10
    assert r.headers["x-ratelimit-limit-requests"] == "6"
    assert re.match(RESET, r.headers["x-ratelimit-reset-requests"])
    with pytest.raises(openai.RateLimitError):
        sdk(gw2.url, secret).chat.completions.create(**chat("m"))

    # Stored as a hash: read Redis directly.
    sha = hashlib.sha256(secret.encode()).hexdigest()
    stored = [k for k in deployment.redis_keys() if ":{keys}:" in k]
    assert f"{deployment.prefix}:{{keys}}:sha:{sha}" in stored
    for k in stored:
        raw = deployment.r.dump(k) or b""
        assert secret.encode() not in raw
    assert deployment.r.get(f"{deployment.prefix}:{{keys}}:id:{key_id}") == sha.encode()
    # One character off is refused.
    with pytest.raises(openai.AuthenticationError):
        sdk(gw1.url, secret[:-1] + ("x" if secret[-1] != "x" else "y")).models.list()


def test_revoked_key_refused_by_every_gateway_within_the_stated_delay(deployment: Deployment) -> None:
    cfg = config(deployment)  # key_cache_s = 1.0
    deployment.worker(cfg)
    gw1, gw2 = deployment.gateway(cfg), deployment.gateway(cfg)
    admin = Admin(gw1.url)
    key_id, secret = admin.create()
    assert post(gw2.url, secret).status_code == 200  # gw2 caches the key
    assert admin.call("DELETE", f"/keys/{key_id}").json()["revoked_at"] is not None
    revoked = time.monotonic()
    assert post(gw1.url, secret).status_code == 401  # the gateway that revoked it: at once

    def refused_at() -> float | None:
        sent = time.monotonic()
        r = httpx.get(f"{gw2.url}/v1/models", headers={"Authorization": f"Bearer {secret}"}, timeout=10)
        return sent if r.status_code == 401 else None

    first_refused = wait_until(refused_at, 3, "gw2 to refuse the revoked key", interval=0.05)
    assert first_refused - revoked <= 1.0 + 0.25  # key_cache_s, and one probe interval
    # Admin routes refuse inference keys; inference refuses the admin key.
    _, other = admin.create()
    assert Admin(gw2.url, other).call("GET", "/keys").status_code == 401
    assert post(gw2.url, ADMIN_KEY).status_code == 401


def test_concurrency_slot_released_when_the_worker_dies(deployment: Deployment) -> None:
    cfg = config(deployment, sim={"tpot_ms": 50})
    worker = deployment.worker(cfg)
    gw1, gw2 = deployment.gateway(cfg), deployment.gateway(cfg)
    key_id, secret = Admin(gw1.url).create(max_concurrent=1)
    with httpx.stream("POST", f"{gw1.url}/v1/chat/completions", json=body("m", max_tokens=400, stream=True),
                      headers={"Authorization": f"Bearer {secret}"}, timeout=30) as resp:
        lines = resp.iter_lines()
        next(line for line in lines if '"content":"' in line and '"content":""' not in line)
        busy = post(gw2.url, secret)
        assert busy.status_code == 429
        assert busy.headers["retry-after"] == "1"
        worker.kill()
        deployment.worker(cfg)  # takes the job over; tokens were out, so the client gets one error
        rest = list(lines)
    assert any('"error"' in line for line in rest), rest[-3:]
    wait_until(lambda: post(gw2.url, secret).status_code == 200, 5, "the slot to come back")
    # That request's own slot is given back just after its answer.
    wait_until(lambda: deployment.r.zcard(f"{deployment.prefix}:rl:{{{key_id}}}:conc") == 0, 3, "no slot held")


def test_slot_of_a_crashed_gateway_expires(deployment: Deployment) -> None:
    cfg = config(deployment, sim={"tpot_ms": 50}, slot_ttl_s=2.0)
    deployment.worker(cfg)
    gw1, gw2 = deployment.gateway(cfg), deployment.gateway(cfg)
    _, secret = Admin(gw1.url).create(max_concurrent=1)
    with httpx.stream("POST", f"{gw1.url}/v1/chat/completions", json=body("m", max_tokens=400, stream=True),
                      headers={"Authorization": f"Bearer {secret}"}, timeout=30) as resp:
        lines = resp.iter_lines()
        next(line for line in lines if '"content":"' in line)
        gw1.proc.kill()  # no settle, no refresh
        crashed = time.monotonic()
        assert post(gw2.url, secret).status_code == 429
    wait_until(lambda: post(gw2.url, secret).status_code == 200, 5, "the crashed gateway's slot to expire")
    assert time.monotonic() - crashed <= 2.0 + 1.5


def test_tokens_per_minute_cut_a_stream_and_usage_is_kept_in_redis(deployment: Deployment) -> None:
    cfg = config(deployment, sim={"tokens_per_chunk": 2, "tpot_ms": 1}, lease_tokens=8)
    deployment.worker(cfg)
    gw = deployment.gateway(cfg)
    admin = Admin(gw.url)
    key_id, secret = admin.create(name="metered", tpm=60)
    stream = sdk(gw.url, secret).chat.completions.create(**chat("m", max_tokens=200), stream=True)
    tokens = 0

    def consume() -> None:
        nonlocal tokens
        for chunk in stream:
            tokens += 2 * bool(chunk.choices and chunk.choices[0].delta.content)

    with pytest.raises(openai.APIError, match="tokens per min"):
        consume()
    budget = 60 - PROMPT_ESTIMATE  # the budget after the prompt's estimate, give or take one chunk of 2
    assert budget - 2 <= tokens <= budget + 2 + 2
    with pytest.raises(openai.RateLimitError):
        sdk(gw.url, secret).chat.completions.create(**chat("m"))
    usage_key = f"{deployment.prefix}:usage:{{{key_id}}}:{time.strftime('%Y%m%d', time.gmtime())}"
    wait_until(lambda: deployment.r.exists(usage_key), 3, "usage in Redis")
    assert 34 * 86400 < deployment.r.ttl(usage_key) <= 35 * 86400
    def totals() -> dict[str, int] | None:
        rows = admin.call("GET", f"/keys/{key_id}/usage").json()["totals"]
        return rows[0] if rows and rows[0]["rate_limited"] == 1 else None  # recorded just after the answer

    total = wait_until(totals, 3, "the refusal in the usage")
    assert total["requests"] == 1
    assert total["completion_tokens"] >= tokens


def test_fair_queueing_a_trickle_is_not_starved_by_a_flood(deployment: Deployment) -> None:
    cfg = config(deployment, sim={"ttft_ms": 20, "tpot_ms": 10, "batch_capacity": 1}, concurrency=1, busy=True)
    deployment.worker(cfg)
    gw = deployment.gateway(cfg)
    admin = Admin(gw.url)
    _, flood = admin.create(name="flood")
    _, trickle = admin.create(name="trickle")
    flood_ttft, trickle_ttft = flood_and_trickle(gw.url, "m", flood, trickle,
                                                 queued=lambda: deployment.waiting() >= 8)
    flood_ttft.sort()
    median_flood = flood_ttft[len(flood_ttft) // 2]
    assert max(trickle_ttft) < 0.35 * median_flood, (trickle_ttft, flood_ttft)


def test_a_keys_priority_is_its_jobs_band(deployment: Deployment) -> None:
    cfg = config(deployment, concurrency=1)
    deployment.worker(cfg)
    gw = deployment.gateway(cfg)
    admin = Admin(gw.url)
    _, low = admin.create(name="batch", priority=0)
    _, high = admin.create(name="interactive", priority=1)
    pool = ThreadPoolExecutor(3)
    try:
        # The worker's one slot is held by a job that never produces a token; the next two wait, each in its
        # key's band.
        pool.submit(post, gw.url, low, prompt="[[sim:hang]]")
        wait_until(lambda: len(deployment.pending()) == 1, 10, "the hanging job to run")
        for key in (low, high):
            pool.submit(post, gw.url, key)
        fair = f"{deployment.prefix}:{{sim}}:fair"
        wait_until(lambda: deployment.r.zcard(f"{fair}:1") == 1 and deployment.r.zcard(f"{fair}:0") == 1, 10,
                   "one job waiting in each band")
    finally:
        gw.proc.kill()  # the clients are still waiting: end them
        pool.shutdown(wait=True)
