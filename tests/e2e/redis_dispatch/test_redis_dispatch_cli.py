"""The command line of the Redis dispatch: `serve --redis`, `worker --backend`, help with examples."""

from __future__ import annotations

import subprocess
import sys

import httpx

from .harness import ROOT, Deployment, Proc, body, content_of, free_port, sse_events, wait_until


def lockgate(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "gateway.cli", *args], capture_output=True, text=True, cwd=ROOT,
                          timeout=30)


def test_serve_with_redis_runs_gateway_and_workers_in_one_process(deployment: Deployment) -> None:
    cfg = deployment.config()
    embedded = cfg.read_text().replace('kind = "redis"', 'kind = "embedded"')
    cfg.write_text(embedded)  # the --redis flag alone switches it to Redis
    port = free_port()
    proc = Proc(["serve", "--config", str(cfg), "--port", str(port), "--redis", deployment.redis_url],
                deployment.tmp / "serve.log")
    deployment.procs.append(proc)

    def ready() -> bool:
        try:
            return httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=1).status_code == 200
        except httpx.HTTPError:
            return False

    wait_until(ready, 20, "serve --redis to be ready", interval=0.05)
    with httpx.stream("POST", f"http://127.0.0.1:{port}/v1/chat/completions", json=body("one process"),
                      timeout=30) as resp:
        events = list(sse_events(resp.iter_lines()))
    assert sum(1 for e in events if content_of(e)) == 16
    assert any(k.endswith(":inbox") for k in deployment.redis_keys()), "jobs went through Redis"
    assert deployment.live_workers() == 1


def test_worker_refuses_an_unknown_backend(deployment: Deployment) -> None:
    result = lockgate("worker", "--config", str(deployment.config()), "--backend", "nope")
    assert result.returncode == 2
    assert "unknown backend" in result.stderr


def test_help_of_gateway_and_worker_shows_examples() -> None:
    for command in ("gateway", "worker"):
        result = lockgate(command, "--help")
        assert result.returncode == 0
        assert f"lockgate {command} --config" in result.stdout
