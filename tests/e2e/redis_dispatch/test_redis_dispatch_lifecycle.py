"""Graceful shutdown of gateways and workers, and invariant 9: no lockgate key without a TTL remains."""

from __future__ import annotations

import contextlib
import signal
import threading
import time
from typing import Any

import httpx

from .harness import Deployment, body, content_of, sse_events, wait_until


def test_no_key_without_ttl_after_a_mixed_run(deployment: Deployment) -> None:
    cfg = deployment.config(sim={"allow_crash": True}, dispatch={"max_deliveries": 1})
    deployment.worker(cfg)
    deployment.worker(cfg)
    gw = deployment.gateway(cfg)
    for i in range(5):
        assert httpx.post(f"{gw.url}/v1/chat/completions", json=body(f"ok {i}", stream=False),
                          timeout=30).status_code == 200
    # A request that never gets a token, abandoned by its client: cancelled.
    with contextlib.suppress(httpx.ReadTimeout), httpx.stream(
            "POST", f"{gw.url}/v1/chat/completions", json=body("[[sim:hang]]", max_tokens=4),
            timeout=httpx.Timeout(30, read=0.5)) as resp:
        resp.read()
    # One crash, then dead-lettered by the other worker (max_deliveries = 1).
    crash = httpx.post(f"{gw.url}/v1/chat/completions", json=body("[[sim:crash]]", stream=False), timeout=30)
    assert crash.status_code == 500
    try:
        wait_until(lambda: not deployment.pending(), 5, "no pending job")
    except TimeoutError:
        logs = "\n".join(p.output() for p in deployment.procs)
        raise AssertionError(f"still pending: {deployment.pending()}\n{logs}") from None
    keys = deployment.redis_keys()
    assert any(k.endswith(":inbox") for k in keys)
    assert any(k.endswith(":dead") for k in keys)
    assert deployment.keys_without_ttl() == []
    # PTTL, not TTL: TTL rounds to whole seconds, and the workers hash lives 3 heartbeats (600 ms here), so a
    # late heartbeat under load showed TTL 0 for a key that had one.
    assert all(deployment.r.pttl(k) > 0 for k in keys), [(k, deployment.r.pttl(k)) for k in keys]


def test_sigterm_gateway_drains_in_flight_stream_then_exits(deployment: Deployment) -> None:
    cfg = deployment.config(sim={"ttft_ms": 10, "tpot_ms": 50}, grace_s=10)
    deployment.worker(cfg)
    gw = deployment.gateway(cfg)
    events: list[Any] = []
    started = threading.Event()

    def client() -> None:
        with httpx.stream("POST", f"{gw.url}/v1/chat/completions", json=body("drain me", max_tokens=20),
                          timeout=30) as resp:
            for event in sse_events(resp.iter_lines()):
                events.append(event)
                started.set()

    thread = threading.Thread(target=client)
    thread.start()
    assert started.wait(10)
    gw.proc.proc.terminate()
    thread.join(20)
    # uvicorn re-raises the captured SIGTERM once it has shut down: a clean exit by that signal.
    assert gw.proc.proc.wait(20) in (0, -signal.SIGTERM)
    assert events[-1] == "[DONE]"
    assert sum(1 for e in events if content_of(e)) == 20
    assert not any(isinstance(e, dict) and "error" in e for e in events)
    assert not any(k.endswith(":inbox") for k in deployment.redis_keys()), "a drained gateway removes its inbox"


def test_sigterm_worker_finishes_running_job_and_leaves(deployment: Deployment) -> None:
    cfg = deployment.config(sim={"ttft_ms": 10, "tpot_ms": 50}, grace_s=10)
    worker = deployment.worker(cfg)
    gw = deployment.gateway(cfg)
    result: dict[str, Any] = {}

    def client() -> None:
        try:
            r = httpx.post(f"{gw.url}/v1/chat/completions", json=body("finish me", max_tokens=20, stream=False),
                           timeout=30)
        except httpx.HTTPError as exc:  # kept for the assertion below, which says what the gateway was doing
            result["error"] = f"{type(exc).__name__}: {exc} after {time.monotonic() - t0:.2f}s"
            return
        result["status"], result["json"] = r.status_code, r.json()

    thread = threading.Thread(target=client)
    t0 = time.monotonic()
    thread.start()
    wait_until(deployment.pending, 10, "the job to start")
    t0 = time.monotonic()
    worker.proc.terminate()
    thread.join(20)
    assert worker.proc.wait(20) == 0
    # Once (one CI run in many, under load) the gateway closed this connection without a response and logged
    # nothing: if it happens again, say whether the gateway was still alive and what it wrote.
    assert "status" in result, (result, f"gateway exit code {gw.proc.proc.poll()}", gw.proc.output())
    assert result["status"] == 200
    assert result["json"]["usage"]["completion_tokens"] == 20
    assert time.monotonic() - t0 < 5
    assert deployment.live_workers() == 0, "a stopped worker withdraws its health report"
