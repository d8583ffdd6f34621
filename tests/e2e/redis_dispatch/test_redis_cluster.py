"""The Redis dispatch on a real 3-master Redis Cluster: gateway and workers as real processes.

Job streams live in the ``{sim}`` slot, each gateway's inbox and per-job keys in its own ``{gateway}`` slot,
usually on another master: every script, blocking read and pipeline must work across the nodes.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest

from .harness import (
    Deployment,
    body,
    content_of,
    expected_text,
    sse_events,
    stream_in_background,
    ttl_checked,
    wait_until,
)
from .topology import Cluster


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    c = Cluster(tmp_path_factory.mktemp("cluster"))
    yield c
    c.close()


@pytest.fixture
def dep(tmp_path: Path, cluster: Cluster) -> Iterator[Deployment]:
    """A deployment on the cluster; afterwards no key of the test without a TTL on any master."""
    with ttl_checked(Deployment(tmp_path, redis_url=cluster.url, client=cluster.client())) as d:
        yield d


def test_streamed_and_plain_requests_through_the_openai_sdk(dep: Deployment) -> None:
    cfg = dep.config()
    worker = dep.worker(cfg)
    gw = dep.gateway(cfg)
    client = openai.OpenAI(base_url=f"{gw.url}/v1", api_key="unused", max_retries=0, timeout=30)
    started = time.monotonic()
    for i in range(3):
        prompt = f"cluster question {i}"
        plain = client.chat.completions.create(
            model="m", messages=[{"role": "user", "content": prompt}], max_tokens=12, seed=7,
            extra_body={"ignore_eos": True})
        assert plain.choices[0].message.content == expected_text(prompt, 12)
        assert plain.usage is not None
        assert plain.usage.completion_tokens == 12
        stream = client.chat.completions.create(
            model="m", messages=[{"role": "user", "content": prompt}], max_tokens=12, seed=7, stream=True,
            extra_body={"ignore_eos": True})
        text = "".join(chunk.choices[0].delta.content or "" for chunk in stream if chunk.choices)
        assert text == expected_text(prompt, 12)
    # Every wait for the bell and every event write worked: none fell back to retrying (redis-py refuses some
    # commands in a Cluster pipeline, and a worker that retried through such errors still served, slowly).
    assert "Redis unavailable" not in worker.output(), worker.output()[-2000:]
    assert time.monotonic() - started < 10


def _plain(client: openai.OpenAI, prompt: str, max_tokens: int) -> str:
    reply = client.chat.completions.create(model="m", messages=[{"role": "user", "content": prompt}],
                                           max_tokens=max_tokens, seed=7, extra_body={"ignore_eos": True})
    return reply.choices[0].message.content or ""


def test_worker_killed_before_first_token_is_reclaimed_by_another(dep: Deployment) -> None:
    slow = dep.config("slow", sim={"ttft_ms": 60_000})
    normal = dep.config("normal")
    doomed = dep.worker(slow)
    gw = dep.gateway(normal)
    thread, result = stream_in_background(gw.url, body("take me over", max_tokens=20))
    wait_until(dep.pending, 15, "the slow worker to hold the job")
    doomed.kill()
    dep.worker(normal)
    thread.join(45)
    assert result["status"] == 200
    events = result["events"]
    assert events[-1] == "[DONE]"
    assert not any(isinstance(e, dict) and "error" in e for e in events)
    assert "".join(t for e in events if (t := content_of(e))) == expected_text("take me over", 20)
    wait_until(lambda: not dep.pending() and dep.r.xlen(dep.jobs_key()) == 0, 5, "the job acked and deleted")


def test_client_disconnect_cancels_the_job(dep: Deployment) -> None:
    cfg = dep.config(sim={"ttft_ms": 10, "tpot_ms": 100})
    dep.worker(cfg)
    gw = dep.gateway(cfg)
    with httpx.stream("POST", f"{gw.url}/v1/chat/completions", json=body("walk away", max_tokens=200),
                      timeout=30) as resp:
        seen = 0
        for event in sse_events(resp.iter_lines()):
            if content_of(event):
                seen += 1
                if seen == 3:
                    break
        assert dep.pending(), "the job should be running"
    hung_up = time.monotonic()
    wait_until(lambda: not dep.pending(), 5, "the job to be cancelled and acknowledged")
    assert time.monotonic() - hung_up < 2.0
    inbox = next(k for k in dep.redis_keys() if k.endswith(":inbox"))
    last = dep.r.xinfo_stream(inbox)["last-generated-id"]
    time.sleep(0.5)
    assert dep.r.xinfo_stream(inbox)["last-generated-id"] == last, "the worker kept sending"
    assert dep.r.xlen(dep.jobs_key()) == 0
    assert [k for k in dep.redis_keys() if ":cancel:" in k or ":streamed:" in k] == []


def test_cancellation_reaches_a_silent_job_by_pub_sub(dep: Deployment) -> None:
    """A hung engine writes nothing, and heartbeats (which re-check cancel flags) are 30 s apart here: only the
    cancel message, published through the cluster, can stop the job within the second."""
    cfg = dep.config(dispatch={"heartbeat_interval_s": 30.0, "visibility_timeout_s": 90.0})
    dep.worker(cfg)
    gw = dep.gateway(cfg)
    ended: list[float] = []

    def client() -> None:
        with contextlib.suppress(httpx.ReadTimeout), httpx.stream(
                "POST", f"{gw.url}/v1/chat/completions", json=body("[[sim:hang]]", max_tokens=4),
                timeout=httpx.Timeout(30, read=2.0)) as resp:
            resp.read()
        ended.append(time.monotonic())

    thread = threading.Thread(target=client)
    thread.start()
    wait_until(dep.pending, 2, "the worker to hold the hung job")
    thread.join(10)
    hung_up = ended[0]
    wait_until(lambda: not dep.pending(), 3, "the hung job to be cancelled and acknowledged")
    assert time.monotonic() - hung_up < 1.5


@pytest.mark.parametrize("under", ["inbox", "jobs"])
def test_master_lost_fails_in_flight_fast_and_the_cluster_recovers(tmp_path: Path, under: str) -> None:
    """A master without a replica dies: the one holding the gateway's inbox (its blocked read fails at once),
    or the one holding only the job streams (the cluster goes CLUSTERDOWN once the others notice, which
    interrupts the inbox read on its healthy master too). In-flight requests fail fast; when the node is
    back (empty), new requests succeed: the inbox is recreated, workers recreate lost consumer groups."""
    own = Cluster(tmp_path / "own", node_timeout_ms=1500)
    d = Deployment(tmp_path, redis_url=own.url, client=own.client())
    try:
        cfg = d.config(sim={"ttft_ms": 10, "tpot_ms": 100})
        d.worker(cfg)
        gw = d.gateway(cfg)
        errors: list[dict[str, Any]] = []
        with httpx.stream("POST", f"{gw.url}/v1/chat/completions", json=body("in flight", max_tokens=100),
                          timeout=30) as resp:
            events = sse_events(resp.iter_lines())
            for event in events:
                if content_of(event):
                    break
            inbox = next(k for k in d.redis_keys() if k.endswith(":inbox"))
            victim = own.node_of(inbox if under == "inbox" else d.jobs_key())
            if under == "jobs" and victim is own.node_of(inbox):
                own.migrate(d.jobs_key(), next(n for n in own.nodes if n is not victim))
                victim = own.node_of(d.jobs_key())
            victim.kill()
            killed = time.monotonic()
            for event in events:
                if isinstance(event, dict) and "error" in event:
                    errors.append(event["error"])
            failed_after = time.monotonic() - killed
        assert len(errors) == 1, errors
        assert errors[0]["code"] == "dispatch_unavailable"
        # Holding only job streams, the node is declared failed after cluster-node-timeout (1.5 s here) plus
        # gossip; generous bounds for a loaded 2-core machine.
        assert failed_after < (2.0 if under == "inbox" else 8.0)

        victim.restart()
        wait_until(own.ok, 30, "the cluster to be whole again", interval=0.2)

        def served() -> bool:
            try:
                r = httpx.post(f"{gw.url}/v1/chat/completions", json=body("after", max_tokens=6, stream=False),
                               timeout=10)
            except httpx.HTTPError:
                return False
            return r.status_code == 200 and r.json()["choices"][0]["message"]["content"] == expected_text("after", 6)

        wait_until(served, 30, "a request to succeed after the node came back", interval=0.3)
        with httpx.stream("POST", f"{gw.url}/v1/chat/completions", json=body("streamed after", max_tokens=8),
                          timeout=30) as resp:
            after = list(sse_events(resp.iter_lines()))
        assert after[-1] == "[DONE]"
        assert "".join(t for e in after if (t := content_of(e))) == expected_text("streamed after", 8)
        d.close()
        assert d.keys_without_ttl() == []
    finally:
        d.close()
        d.cleanup()
        own.close()


def test_slots_migrated_mid_run_moved_and_ask_are_followed(dep: Deployment, cluster: Cluster) -> None:
    """The job streams' slot and the gateway inbox's slot move to other masters while streams run. Clients
    meet ASK during the move and MOVED after it. Every request ends cleanly: its whole exact text, or (if a
    command met the slot mid-move) its first tokens and then exactly one error; never a token twice. New
    requests succeed afterwards."""
    cfg = dep.config(sim={"ttft_ms": 10, "tpot_ms": 40})
    dep.worker(cfg)
    gw = dep.gateway(cfg)
    results: dict[int, list[Any]] = {}
    started = threading.Barrier(5)

    def client(i: int) -> None:
        with httpx.stream("POST", f"{gw.url}/v1/chat/completions", json=body(f"moving {i}", max_tokens=40),
                          timeout=60) as resp:
            started.wait(10)
            results[i] = [resp.status_code, *sse_events(resp.iter_lines())]

    threads = [threading.Thread(target=client, args=(i,)) for i in range(4)]
    for thread in threads:
        thread.start()
    started.wait(10)
    inbox = next(k for k in dep.redis_keys() if k.endswith(":inbox"))
    for key in (dep.jobs_key(), inbox):
        src = cluster.node_of(key)
        cluster.migrate(key, next(n for n in cluster.nodes if n is not src))
        assert cluster.node_of(key) is not src
    for thread in threads:
        thread.join(60)
    for i in range(4):
        status, *events = results[i]
        assert status == 200
        assert events[-1] == "[DONE]"
        text = "".join(t for e in events if (t := content_of(e)))
        errors = [e for e in events if isinstance(e, dict) and "error" in e]
        if errors:
            assert len(errors) == 1, errors
            assert expected_text(f"moving {i}", 40).startswith(text)
        else:
            assert text == expected_text(f"moving {i}", 40)
    client_ = openai.OpenAI(base_url=f"{gw.url}/v1", api_key="unused", max_retries=0, timeout=30)

    def served() -> bool:
        # Workers' health reports moved with their slot: on a loaded machine the gateway may briefly see none
        # (503) while its poller catches up.
        try:
            return _plain(client_, "settled", 4) == expected_text("settled", 4)
        except openai.APIStatusError as exc:
            if exc.status_code != 503:
                raise
            return False

    wait_until(served, 20, "a request to succeed after the move", interval=0.2)
    for i in range(3):
        stream = client_.chat.completions.create(
            model="m", messages=[{"role": "user", "content": f"after {i}"}], max_tokens=8, seed=7, stream=True,
            extra_body={"ignore_eos": True})
        assert "".join(c.choices[0].delta.content or "" for c in stream if c.choices) == expected_text(f"after {i}", 8)
