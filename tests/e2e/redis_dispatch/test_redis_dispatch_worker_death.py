"""Worker death: after the first token it is one error (no replay); before it, another worker takes over."""

from __future__ import annotations

from typing import Any

import httpx

from .harness import Deployment, body, content_of, sse_events, stream_in_background, wait_until


def test_worker_killed_after_five_tokens_gives_those_tokens_then_one_error(deployment: Deployment) -> None:
    cfg = deployment.config(sim={"ttft_ms": 10, "tpot_ms": 100})
    first = deployment.worker(cfg)
    gw = deployment.gateway(cfg)
    contents: list[str] = []
    errors: list[dict[str, Any]] = []
    tail: list[Any] = []
    with httpx.stream("POST", f"{gw.url}/v1/chat/completions", json=body("kill me after five", max_tokens=40),
                      timeout=30) as resp:
        assert resp.status_code == 200
        for event in sse_events(resp.iter_lines()):
            if tail or errors:
                tail.append(event)
                continue
            text = content_of(event)
            if text:
                contents.append(text)
                if len(contents) == 5:
                    first.kill()
                    deployment.worker(cfg)  # the survivor that finds the half-served job
            elif isinstance(event, dict) and "error" in event:
                errors.append(event["error"])
    assert len(contents) == 5, contents
    assert len(errors) == 1
    assert errors[0]["code"] == "worker_lost"
    assert tail == ["[DONE]"]
    wait_until(lambda: not deployment.pending() and deployment.r.xlen(deployment.jobs_key()) == 0, 5,
               "the job to be acknowledged and deleted")


def test_worker_killed_before_first_token_job_completes_elsewhere(deployment: Deployment) -> None:
    slow = deployment.config("slow", sim={"ttft_ms": 60_000})
    normal = deployment.config("normal", sim={"ttft_ms": 10, "tpot_ms": 5})
    doomed = deployment.worker(slow)
    gw = deployment.gateway(normal)
    thread, result = stream_in_background(gw.url, body("take me over", max_tokens=20))
    wait_until(deployment.pending, 10, "the slow worker to hold the job")
    doomed.kill()
    deployment.worker(normal)
    thread.join(30)
    assert result["status"] == 200
    events = result["events"]
    assert events[-1] == "[DONE]"
    assert not any(isinstance(e, dict) and "error" in e for e in events)
    text = "".join(t for e in events if (t := content_of(e)))
    usage = next(e["usage"] for e in events if isinstance(e, dict) and e.get("usage"))
    assert usage["completion_tokens"] == 20
    # The same request served in one go gives the same text: nothing lost, nothing doubled.
    again = httpx.post(f"{gw.url}/v1/chat/completions", json=body("take me over", max_tokens=20, stream=False),
                       timeout=30).json()
    assert text == again["choices"][0]["message"]["content"]


def test_job_that_kills_every_worker_is_dead_lettered_with_one_error(deployment: Deployment) -> None:
    cfg = deployment.config(sim={"allow_crash": True}, dispatch={"max_deliveries": 2})
    workers = [deployment.worker(cfg) for _ in range(3)]
    gw = deployment.gateway(cfg)
    resp = httpx.post(f"{gw.url}/v1/chat/completions", json=body("[[sim:crash]]", stream=False), timeout=60)
    assert resp.status_code == 500
    assert resp.json()["error"]["code"] == "dead_lettered"
    assert sum(not w.alive for w in workers) == 2  # delivered twice, then set aside by the third
    dead = deployment.r.xrange(f"{deployment.prefix}:{{sim}}:dead")
    assert len(dead) == 1
    assert dead[0][1][b"reason"] == b"max_deliveries"
    assert deployment.r.xlen(deployment.jobs_key()) == 0
    # The survivor still serves.
    ok = httpx.post(f"{gw.url}/v1/chat/completions", json=body("fine", stream=False), timeout=30)
    assert ok.status_code == 200
