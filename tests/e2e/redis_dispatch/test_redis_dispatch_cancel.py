"""Client disconnect: the worker aborts the engine request within a second, acks, and the job's keys go."""

from __future__ import annotations

import contextlib
import time

import httpx

from .harness import Deployment, body, content_of, sse_events, wait_until


def test_client_disconnect_stops_the_worker_within_a_second_and_acks(deployment: Deployment) -> None:
    cfg = deployment.config(sim={"ttft_ms": 10, "tpot_ms": 100})
    worker = deployment.worker(cfg)
    gw = deployment.gateway(cfg)
    inbox = None
    with httpx.stream("POST", f"{gw.url}/v1/chat/completions", json=body("walk away", max_tokens=200),
                      timeout=30) as resp:
        seen = 0
        # Held in a variable: a generator dropped at the break is closed at once, and closing httpx's line
        # iterator closes the connection, which would hang up before the assertions below.
        events = sse_events(resp.iter_lines())
        for event in events:
            if content_of(event):
                seen += 1
                if seen == 3:
                    break
        running = deployment.pending()
        assert running, f"the job should be running: keys {deployment.redis_keys()}\n{worker.output()}"
    hung_up = time.monotonic()  # leaving the block closed the connection
    wait_until(lambda: not deployment.pending(), 3, "the job to be acknowledged")
    assert time.monotonic() - hung_up < 1.5
    inbox = next(k for k in deployment.redis_keys() if k.endswith(":inbox"))
    last = deployment.r.xinfo_stream(inbox)["last-generated-id"]
    time.sleep(0.5)
    assert deployment.r.xinfo_stream(inbox)["last-generated-id"] == last, "the worker kept sending"
    assert deployment.r.xlen(deployment.jobs_key()) == 0
    assert [k for k in deployment.redis_keys() if ":cancel:" in k or ":streamed:" in k] == []


def test_client_gone_before_first_token_cancels_the_job(deployment: Deployment) -> None:
    cfg = deployment.config()
    deployment.worker(cfg)
    gw = deployment.gateway(cfg)
    with contextlib.suppress(httpx.ReadTimeout), httpx.stream(
            "POST", f"{gw.url}/v1/chat/completions", json=body("[[sim:hang]]", max_tokens=4),
            timeout=httpx.Timeout(30, read=0.5)) as resp:
        resp.read()
    hung_up = time.monotonic()
    wait_until(lambda: not deployment.pending(), 3, "the hung job to be cancelled and acknowledged")
    assert time.monotonic() - hung_up < 1.5
    assert [k for k in deployment.redis_keys() if ":cancel:" in k or ":streamed:" in k] == []
