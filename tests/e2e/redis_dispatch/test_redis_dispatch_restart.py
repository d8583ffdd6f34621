"""Redis restarted (no persistence) mid-run: in-flight requests fail fast; new ones succeed once it is back."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from .harness import Deployment, RedisServer, body, content_of, sse_events, wait_until


@pytest.fixture
def own_redis(tmp_path: Path) -> Iterator[RedisServer]:
    server = RedisServer(tmp_path)
    server.start()
    yield server
    server.kill()


def test_redis_restart_fails_in_flight_fast_and_recovers(tmp_path: Path, own_redis: RedisServer) -> None:
    dep = Deployment(tmp_path, redis_url=own_redis.url)
    try:
        cfg = dep.config(sim={"ttft_ms": 10, "tpot_ms": 100})
        dep.worker(cfg)
        gw = dep.gateway(cfg)
        errors: list[dict[str, Any]] = []
        with httpx.stream("POST", f"{gw.url}/v1/chat/completions", json=body("in flight", max_tokens=100),
                          timeout=30) as resp:
            events = sse_events(resp.iter_lines())
            for event in events:
                if content_of(event):
                    break
            own_redis.kill()
            killed = time.monotonic()
            for event in events:
                if isinstance(event, dict) and "error" in event:
                    errors.append(event["error"])
            failed_after = time.monotonic() - killed
        assert len(errors) == 1
        assert errors[0]["code"] == "dispatch_unavailable"
        assert failed_after < 2.0

        # While Redis is down: new requests are refused at once with 503, not left hanging.
        t0 = time.monotonic()
        down = httpx.post(f"{gw.url}/v1/chat/completions", json=body("while down", stream=False), timeout=10)
        assert down.status_code == 503
        assert time.monotonic() - t0 < 2.0

        own_redis.start()  # same port, empty: no streams, no groups, no inbox

        def served() -> bool:
            try:
                r = httpx.post(f"{gw.url}/v1/chat/completions", json=body("after", stream=False), timeout=10)
            except httpx.HTTPError:
                return False
            return r.status_code == 200

        wait_until(served, 20, "a request to succeed after the restart", interval=0.2)
        with httpx.stream("POST", f"{gw.url}/v1/chat/completions", json=body("streamed after", max_tokens=8),
                          timeout=30) as resp:
            events_after = list(sse_events(resp.iter_lines()))
        assert events_after[-1] == "[DONE]"
        assert sum(1 for e in events_after if content_of(e)) == 8
        assert dep.keys_without_ttl() == []
    finally:
        dep.close()
