"""``dispatch.local`` end to end: `lockgate serve` with Redis dispatch starts its own gateway's jobs on its own worker,
records them in Redis, and streams them without the inbox; a `lockgate gateway` beside it still reaches that worker
through the queue."""

from __future__ import annotations

import re

import httpx

from .harness import Deployment, Gateway, Proc, body, content_of, expected_text, free_port, sse_events, wait_until


def _stream(url: str, prompt: str) -> tuple[str, dict[str, str]]:
    with httpx.Client(timeout=30) as client, client.stream(
            "POST", f"{url}/v1/chat/completions", json=body(prompt, max_tokens=8)) as resp:
        assert resp.status_code == 200, resp.read()
        text = "".join(c for e in sse_events(resp.iter_lines()) if (c := content_of(e)))
        return text, dict(resp.headers)


def _wakes(url: str) -> dict[str, float]:
    metrics = httpx.get(f"{url}/metrics", timeout=5).text
    return {m.group(1): float(m.group(2)) for m in
            re.finditer(r'^lockgate_dispatch_wakes_total\{[^}]*lockgate_dispatch_wake="(\w+)"[^}]*\} (\S+)$', metrics,
                        re.M)}


def test_serve_runs_its_own_jobs_locally_and_a_gateway_reaches_its_worker_through_redis(
        deployment: Deployment) -> None:
    cfg = deployment.config(dispatch={"local": True})
    port = free_port()
    serve = Proc(["serve", "--config", str(cfg), "--port", str(port)], deployment.tmp / "serve.log")
    deployment.procs.append(serve)
    local = Gateway(serve, port)

    def ready() -> bool:
        assert serve.alive, serve.output()
        try:
            return httpx.get(f"{local.url}/readyz", timeout=1).status_code == 200
        except httpx.HTTPError:
            return False

    wait_until(ready, 30, "lockgate serve to be ready", interval=0.05)
    for i in range(5):
        text, headers = _stream(local.url, f"local {i}")
        assert text == expected_text(f"local {i}", 8)
        assert float(headers["x-lockgate-queue-ms"]) >= 0
    wait_until(lambda: _wakes(local.url).get("local") == 5, 10, "the local wakes in /metrics")
    # Nothing went through the inbox: only its opening entry is there, and nothing is left pending.
    inbox = [k for k in deployment.redis_keys() if k.endswith(":inbox")]
    assert len(inbox) == 1
    assert deployment.r.xlen(inbox[0]) <= 1
    wait_until(lambda: deployment.pending() == [], 5, "the local jobs to be acknowledged")

    # A gateway of its own (no workers in its process): its jobs queue and the serve process's worker takes them.
    gateway = deployment.gateway(cfg)
    for i in range(3):
        text, _ = _stream(gateway.url, f"remote {i}")
        assert text == expected_text(f"remote {i}", 8)
    assert "local" not in _wakes(gateway.url)
    wait_until(lambda: deployment.pending() == [], 5, "the queued jobs to be acknowledged")
