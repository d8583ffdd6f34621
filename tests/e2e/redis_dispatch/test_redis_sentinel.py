"""The Redis dispatch through Sentinel (a master, a replica, one Sentinel), with a failover mid-run."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import msgspec
import openai
import pytest
import redis
import redis.asyncio

from dispatch.redis.connection import connect
from gateway.config.redis_target import parse_url

from .harness import Deployment, body, content_of, expected_text, sse_events, ttl_checked, wait_until
from .topology import PASSWORD, SENTINEL_PASSWORD, SentinelSetup


@pytest.fixture
def sentinel(tmp_path: Path) -> Iterator[SentinelSetup]:
    setup = SentinelSetup(tmp_path)
    yield setup
    setup.close()


@pytest.fixture
def dep(tmp_path: Path, sentinel: SentinelSetup) -> Iterator[Deployment]:
    """A deployment through the Sentinel; afterwards no key of the test without a TTL on the (current) master."""
    d = Deployment(tmp_path, redis_url=sentinel.url, client=sentinel.client(),
                   dispatch={"redis": {"sentinel_password": SENTINEL_PASSWORD}})
    with ttl_checked(d):
        yield d


def _chat(client: openai.OpenAI, prompt: str, *, stream: bool) -> str:
    kwargs: dict[str, Any] = {"model": "m", "messages": [{"role": "user", "content": prompt}], "max_tokens": 10,
                              "seed": 7, "extra_body": {"ignore_eos": True}}
    if stream:
        chunks = client.chat.completions.create(stream=True, **kwargs)
        return "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    return client.chat.completions.create(**kwargs).choices[0].message.content or ""


def test_requests_through_sentinel(dep: Deployment, sentinel: SentinelSetup) -> None:
    cfg = dep.config()
    dep.worker(cfg)
    gw = dep.gateway(cfg)
    client = openai.OpenAI(base_url=f"{gw.url}/v1", api_key="unused", max_retries=0, timeout=30)
    for stream in (False, True):
        assert _chat(client, "through the sentinel", stream=stream) == expected_text("through the sentinel", 10)
    # It really went to the master the Sentinel names.
    assert dep.redis_keys()
    assert sentinel.master_port() == sentinel.master.port


def test_failover_fails_in_flight_fast_and_new_requests_succeed(dep: Deployment, sentinel: SentinelSetup) -> None:
    # A visibility timeout well above how long a Sentinel failover can stall a loaded machine: this test is
    # about the failover, not about reclaiming a job whose heartbeats were late meanwhile.
    cfg = dep.config(sim={"ttft_ms": 10, "tpot_ms": 100},
                     dispatch={"visibility_timeout_s": 20.0, "heartbeat_interval_s": 0.5})
    dep.worker(cfg)
    gw = dep.gateway(cfg)
    seen: list[tuple[float, Any]] = []
    streaming = threading.Event()

    def client() -> None:
        with httpx.stream("POST", f"{gw.url}/v1/chat/completions", json=body("in flight", max_tokens=150),
                          timeout=60) as resp:
            for event in sse_events(resp.iter_lines()):
                seen.append((time.monotonic(), event))
                if content_of(event):
                    streaming.set()

    thread = threading.Thread(target=client)
    thread.start()
    assert streaming.wait(20), "the stream never started"
    new_master = sentinel.failover()
    switched = time.monotonic()  # the Sentinel names the promoted replica (SENTINEL GET-MASTER-ADDR-BY-NAME)
    thread.join(40)
    assert new_master == sentinel.replica.port
    events = [e for _, e in seen]
    errors = [(t, e["error"]) for t, e in seen if isinstance(e, dict) and "error" in e]
    assert len(errors) == 1, errors
    assert errors[0][1]["code"] == "dispatch_unavailable"
    assert events[-1] == "[DONE]"
    assert events.index("[DONE]") == len(events) - 1
    assert sum(1 for e in events if content_of(e)) < 150
    # Within a few polls of the watch (0.5 s); without the watch, only when the Sentinel demotes the old
    # master (10 to 30 s later here). Generous for a loaded 2-core machine.
    assert errors[0][0] - switched < 3.0
    # The test's own client kept its pooled connection to the old master (redis-py reuses it); look at the new.
    dep.r.close()
    dep.r = redis.Redis(port=new_master, password=PASSWORD)
    # The worker dropped the job too (nobody waits for it any more) and acknowledged it on the new master.
    wait_until(lambda: not dep.pending(), 10, "the in-flight job to be aborted and acknowledged")

    client = openai.OpenAI(base_url=f"{gw.url}/v1", api_key="unused", max_retries=0, timeout=30)

    def served() -> bool:
        try:
            return _chat(client, "after the failover", stream=False) == expected_text("after the failover", 10)
        except openai.APIError:
            return False

    wait_until(served, 20, "a request to succeed on the new master", interval=0.2)
    assert _chat(client, "streamed after", stream=True) == expected_text("streamed after", 10)
    assert sentinel.master_port() == new_master


@pytest.mark.anyio
async def test_a_connection_busy_during_the_failover_is_not_reused_against_the_old_master(
        sentinel: SentinelSetup) -> None:
    """redis-py's asyncio pool would hand a connection that was blocked in a read on the old master back out
    after the failover; lockgate's Sentinel pool reconnects it to the new master instead."""
    client = connect(msgspec.structs.replace(parse_url(sentinel.url), sentinel_password=SENTINEL_PASSWORD))
    assert isinstance(client, redis.asyncio.Redis)
    pool = client.connection_pool
    try:
        await client.set("warm", "1")
        blocked = asyncio.create_task(client.xread({"nothing": "$"}, block=6000))
        await asyncio.sleep(0.3)  # the read holds its connection to the old master
        new_master = await asyncio.to_thread(sentinel.failover)
        # What the master watch does.
        deadline = time.monotonic() + 10
        while await pool.get_master_address() != ("127.0.0.1", new_master):
            assert time.monotonic() < deadline, "the Sentinel never named the new master"
            await asyncio.sleep(0.05)
        assert not blocked.done(), "the read should still hold its connection to the old master"
        await blocked  # returns when its block ends; the connection goes back to the pool
        await client.set("after", "1")
        assert redis.Redis(port=new_master, password=PASSWORD).get("after") == b"1"
    finally:
        await client.aclose()
