"""A job's priority band reaches each engine in that engine's own terms, as the engine received it (the replicas'
``--request-log``), and the replicas accept or refuse a priority as the engines do."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from backends.events import Completed, Event
from backends.http.base import HttpBackend
from backends.protocol import Backend
from backends.replicas.app import ReplicaApp
from backends.replicas.request_log import RequestLog
from backends.replicas.server import replica_app
from backends.request import ChatMessage, GenerationRequest
from backends.sglang import SglangBackend, SglangOptions
from backends.trtllm import TrtllmBackend, TrtllmOptions
from backends.vllm import VllmBackend, VllmOptions
from backends.worker import run_job
from dispatch.job import Job
from observability.telemetry import Telemetry

FAST = {"ttft_ms": 1, "tpot_ms": 1, "max_model_len": 64}


def request(operation: str) -> GenerationRequest:
    if operation == "chat":
        return GenerationRequest(request_id="r", model="m", operation="chat", max_tokens=3,
                                 messages=(ChatMessage("user", "hi"),))
    return GenerationRequest(request_id="r", model="m", operation="text_completion", max_tokens=3, prompt="hi")


def sent_priorities(serve: Callable[[Any], Any], tmp_path: Path, protocol: str,
                    make: Callable[[str], HttpBackend], jobs: list[tuple[str, int]]) -> list[Any]:
    """Run each (operation, priority band) job through run_job, as a worker does; return the ``priority`` field
    of each request body the replica received."""
    tmp_path.mkdir(exist_ok=True)
    log = tmp_path / f"{protocol}.jsonl"
    app = replica_app(protocol, "m", FAST)
    assert isinstance(app, ReplicaApp)
    server = serve(RequestLog(app, log))

    async def go() -> None:
        backend: Backend = make(server.url)
        try:
            for i, (operation, band) in enumerate(jobs):
                events: list[Event] = []

                async def emit(event: Event, events: list[Event] = events) -> None:
                    events.append(event)

                job = Job(id=f"j{i}", model="m", backend="b", request=request(operation), priority=band)
                terminal = await run_job(backend, job, emit, Telemetry())
                assert isinstance(terminal, Completed), terminal
        finally:
            await backend.close()

    asyncio.run(go())
    entries = [json.loads(line) for line in log.read_text().splitlines()]
    return [e["priority"] for e in entries if e["method"] == "POST"]


def test_vllm_gets_the_band_negated_only_with_priority_scheduling(serve: Callable[[Any], Any],
                                                                   tmp_path: Path) -> None:
    def make(url: str, on: bool) -> HttpBackend:
        return VllmBackend("v", VllmOptions(url=url, model="m", priority_scheduling=on))

    jobs = [("text_completion", 3), ("chat", -2), ("chat", 0)]
    assert sent_priorities(serve, tmp_path, "vllm", lambda u: make(u, True), jobs) == [-3, 2, 0]
    assert sent_priorities(serve, tmp_path / "off", "vllm", lambda u: make(u, False), jobs) == [None] * 3


def test_sglang_gets_the_band_on_generate_and_v1_only_with_priority_scheduling(
        serve: Callable[[Any], Any], tmp_path: Path) -> None:
    def make(url: str, on: bool, low_first: bool = False) -> HttpBackend:
        return SglangBackend("s", SglangOptions(url=url, model="m", priority_scheduling=on,
                                                low_priority_values_first=low_first))

    jobs = [("text_completion", 3), ("chat", 2)]  # /generate, then /v1/chat/completions
    assert sent_priorities(serve, tmp_path, "sglang", lambda u: make(u, True), jobs) == [3, 2]
    assert sent_priorities(serve, tmp_path / "low", "sglang", lambda u: make(u, True, True), jobs) == [-3, -2]
    assert sent_priorities(serve, tmp_path / "off", "sglang", lambda u: make(u, False), jobs) == [None, None]


def test_trtllm_gets_the_band_on_its_float_scale(serve: Callable[[Any], Any], tmp_path: Path) -> None:
    def make(url: str) -> HttpBackend:
        return TrtllmBackend("t", TrtllmOptions(url=url, model="m", priority_levels=4))

    jobs = [("text_completion", 2), ("chat", -4), ("chat", 9), ("chat", 0)]
    # 0.5 + band / (2 * levels), clamped to [0, 1]; band 0 sends nothing (the engine's neutral 0.5).
    assert sent_priorities(serve, tmp_path, "trtllm", make, jobs) == [0.75, 0.0, 1.0, None]


def test_a_client_priority_field_never_reaches_the_engine() -> None:
    # The band comes from the job (set by the gateway per key), not from a request field a client could set.
    req = GenerationRequest(request_id="r", model="m", operation="text_completion", max_tokens=3, prompt="hi",
                            extra={"priority": 99, "top_k": 2})
    body = VllmBackend("v", VllmOptions(url="http://x:1", priority_scheduling=True)).build_call(req).body
    assert body["priority"] == 0
    assert body["top_k"] == 2
    assert "priority" not in TrtllmBackend("t", TrtllmOptions(url="http://x:1")).build_call(req).body


@pytest.mark.parametrize(("protocol", "path", "priority", "status"), [
    ("vllm", "/v1/completions", 5, 200),  # vLLM 0.32 takes any int, whatever its scheduling policy
    ("vllm", "/v1/completions", 1.5, 400),
    ("sglang", "/generate", -3, 200),
    ("sglang", "/generate", "high", 400),
    ("sglang", "/v1/completions", 1.5, 400),
    ("trtllm", "/v1/completions", 0.75, 200),
    ("trtllm", "/v1/completions", "high", 400),
])
def test_replicas_accept_and_refuse_priorities_as_the_engines_do(
        serve: Callable[[Any], Any], protocol: str, path: str, priority: Any, status: int) -> None:
    server = serve(replica_app(protocol, "m", FAST))
    body: dict[str, Any] = {"priority": priority}
    if path == "/generate":
        body |= {"text": "hi", "sampling_params": {"max_new_tokens": 2}}
    else:
        body |= {"model": "m", "prompt": "hi", "max_tokens": 2}
    resp = httpx.post(f"{server.url}{path}", json=body, timeout=10)
    assert resp.status_code == status, resp.text
    if status == 400:
        assert "priority" in resp.text
