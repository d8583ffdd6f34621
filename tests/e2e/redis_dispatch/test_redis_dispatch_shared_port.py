"""`server.reuse_port`: several gateway processes on one host share a port (SO_REUSEPORT) in front of one Redis."""

from __future__ import annotations

import httpx

from .harness import Deployment, Proc, body, content_of, free_port, sse_events, wait_until


def _stream(port: int, prompt: str) -> int:
    # A client per request: a new connection each time, so the kernel picks a process each time.
    with httpx.Client(timeout=30) as client, client.stream(
            "POST", f"http://127.0.0.1:{port}/v1/chat/completions", json=body(prompt, max_tokens=8)) as resp:
        assert resp.status_code == 200
        return sum(1 for e in sse_events(resp.iter_lines()) if content_of(e))


def test_two_gateways_share_a_port_and_either_can_leave(deployment: Deployment) -> None:
    cfg = deployment.config()
    cfg.write_text(cfg.read_text().replace("[server]\n", "[server]\nreuse_port = true\n", 1))
    deployment.worker(cfg)
    port = free_port()
    gateways = [Proc(["gateway", "--config", str(cfg), "--port", str(port)], deployment.tmp / f"gw{i}.log")
                for i in range(2)]
    deployment.procs.extend(gateways)

    def ready() -> bool:
        assert all(g.alive for g in gateways), [g.output() for g in gateways]
        return all("port shared" in g.output() for g in gateways) and _healthy(port)

    wait_until(ready, 20, "both gateways to listen on one port", interval=0.1)
    assert [_stream(port, f"shared {i}") for i in range(20)] == [8] * 20

    # One leaves (drained, exit 0); the port keeps answering through the other.
    assert gateways[0].terminate() == 0
    assert [_stream(port, f"after {i}") for i in range(10)] == [8] * 10
    assert gateways[1].alive


def test_without_reuse_port_a_second_gateway_cannot_bind(deployment: Deployment) -> None:
    cfg = deployment.config()
    deployment.worker(cfg)
    first = deployment.gateway(cfg)
    second = Proc(["gateway", "--config", str(cfg), "--port", str(first.port)], deployment.tmp / "second.log")
    deployment.procs.append(second)
    wait_until(lambda: not second.alive, 20, "the second gateway to give up")
    assert "address already in use" in second.output().lower()


def _healthy(port: int) -> bool:
    try:
        return httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=1).status_code == 200
    except httpx.HTTPError:
        return False
