"""A generation longer than the visibility timeout is never reclaimed while its worker lives."""

from __future__ import annotations

import httpx

from .harness import Deployment, body, content_of, sse_events


def test_long_generation_is_not_reclaimed_while_its_worker_heartbeats(deployment: Deployment) -> None:
    # 40 tokens x 100 ms = 4 s, over two visibility timeouts (1.5 s); heartbeats every 0.2 s.
    cfg = deployment.config(sim={"ttft_ms": 10, "tpot_ms": 100})
    workers = [deployment.worker(cfg), deployment.worker(cfg)]
    gw = deployment.gateway(cfg)
    holders: set[str] = set()
    deliveries: set[int] = set()
    contents: list[str] = []
    with httpx.stream("POST", f"{gw.url}/v1/chat/completions", json=body("long one", max_tokens=40),
                      timeout=30) as resp:
        for event in sse_events(resp.iter_lines()):
            assert not (isinstance(event, dict) and "error" in event), event
            if text := content_of(event):
                contents.append(text)
            for p in deployment.pending():
                holders.add(p["consumer"].decode())
                deliveries.add(p["times_delivered"])
    assert len(contents) == 40
    assert len(holders) == 1
    assert deliveries == {1}
    assert all("reclaimed" not in w.output() for w in workers)
