"""Each HTTP adapter reuses its engine connection: a finished stream is read to its end (the chunked body's
terminator after ``[DONE]``), so httpx keeps the connection. Before, every request closed it and the engine's API
server, often the saturated part, paid a new connection per request. The replicas' request log records the
client's port of each request: one port means one connection. A cancelled stream must still close its connection
(that is how the engine learns to stop)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from backends.events import Completed, Delta, Event
from backends.http.base import HttpBackend
from backends.replicas.app import ReplicaApp
from backends.replicas.request_log import RequestLog
from backends.replicas.server import replica_app
from backends.request import ChatMessage, GenerationRequest
from backends.sglang import SglangBackend, SglangOptions
from backends.trtllm import TrtllmBackend, TrtllmOptions
from backends.vllm import VllmBackend, VllmOptions

FAST = {"ttft_ms": 1, "tpot_ms": 1, "max_model_len": 64}
SLOW = {"ttft_ms": 1, "tpot_ms": 200, "max_model_len": 64}

ADAPTERS: dict[str, Callable[[str], HttpBackend]] = {
    # Long polls: only the requests under test reach the log while the test runs.
    "vllm": lambda url: VllmBackend("v", VllmOptions(url=url, model="m", poll_interval_s=3600)),
    "sglang-native": lambda url: SglangBackend("s", SglangOptions(url=url, model="m", poll_interval_s=3600)),
    "sglang-openai": lambda url: SglangBackend("s", SglangOptions(url=url, model="m", protocol="openai",
                                                                  poll_interval_s=3600)),
    "trtllm": lambda url: TrtllmBackend("t", TrtllmOptions(url=url, model="m", poll_interval_s=3600)),
}


def request(i: int) -> GenerationRequest:
    if i % 2:
        return GenerationRequest(request_id=f"r{i}", model="m", operation="chat", max_tokens=4,
                                 messages=(ChatMessage("user", "hi"),))
    return GenerationRequest(request_id=f"r{i}", model="m", operation="text_completion", max_tokens=4, prompt="hi")


async def stop_at(backend: HttpBackend, req: GenerationRequest, kind: type[Event]) -> None:
    """Consume a stream until its first ``kind`` event, then close it, as a worker or a departing client does."""
    events = backend.generate(req)
    async for event in events:
        if isinstance(event, kind):
            break
    await events.aclose()


def generation_ports(log: Path) -> list[int]:
    entries = [json.loads(line) for line in log.read_text().splitlines()]
    return [e["client_port"] for e in entries if e["method"] == "POST"]


@pytest.mark.parametrize("adapter", sorted(ADAPTERS))
def test_sequential_streams_share_one_engine_connection(adapter: str, serve: Callable[[Any], Any],
                                                         tmp_path: Path) -> None:
    log = tmp_path / "requests.jsonl"
    app = replica_app(adapter.split("-")[0], "m", FAST)
    assert isinstance(app, ReplicaApp)
    server = serve(RequestLog(app, log))

    async def go() -> None:
        backend = ADAPTERS[adapter](server.url)
        try:
            for i in range(6):
                events: list[Event] = [e async for e in backend.generate(request(i))]
                assert isinstance(events[-1], Completed), events[-1]
        finally:
            await backend.close()

    asyncio.run(go())
    ports = generation_ports(log)
    assert len(ports) == 6
    assert len(set(ports)) == 1, f"one connection per request: ports {ports}"


def test_a_worker_that_stops_at_the_terminal_event_still_leaves_the_connection_reusable(
        serve: Callable[[Any], Any], tmp_path: Path) -> None:
    # The worker closes the adapter's stream as soon as the terminal event is out (backends/worker.py): the rest
    # of the body is read in that close, after the consumer already has its Completed.
    log = tmp_path / "requests.jsonl"
    app = replica_app("vllm", "m", FAST)
    assert isinstance(app, ReplicaApp)
    server = serve(RequestLog(app, log))

    async def go() -> None:
        backend = ADAPTERS["vllm"](server.url)
        try:
            for i in range(4):
                await stop_at(backend, request(i), Completed)
        finally:
            await backend.close()

    asyncio.run(go())
    assert len(set(generation_ports(log))) == 1


def test_a_cancelled_stream_closes_its_connection(serve: Callable[[Any], Any], tmp_path: Path) -> None:
    log = tmp_path / "requests.jsonl"
    app = replica_app("vllm", "m", SLOW)
    assert isinstance(app, ReplicaApp)
    server = serve(RequestLog(app, log))

    async def go() -> None:
        backend = ADAPTERS["vllm"](server.url)
        try:
            for _i in range(2):
                await stop_at(backend, request(0), Delta)  # the client went away mid-stream
            done = [e async for e in backend.generate(request(2))]  # a new connection, then reused
            assert isinstance(done[-1], Completed)
        finally:
            await backend.close()

    asyncio.run(go())
    ports = generation_ports(log)
    assert len(ports) == 3
    assert ports[0] != ports[1], "a cancelled stream's connection must not be reused"

