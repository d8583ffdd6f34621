"""The trtllm adapter against the TensorRT-LLM protocol replica: each quirk of trtllm-serve (and Triton) pinned."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import httpx

from backends.events import Completed, Delta, Failed
from backends.http.priority import trtllm_priority
from backends.replicas.server import replica_app
from backends.request import ChatMessage, GenerationRequest
from backends.trtllm import TrtllmBackend, TrtllmOptions
from tests.support.servers import until

FAST = {"ttft_ms": 1, "tpot_ms": 1, "max_model_len": 64}


def chat(content: str = "hi", **kw: Any) -> GenerationRequest:
    extra = {"ignore_eos": True, "top_k": 3, "best_effort_unknown": 1, **kw.pop("extra", {})}
    return GenerationRequest(request_id="t1", model="m", operation="chat", max_tokens=5,
                             messages=(ChatMessage("user", content),), extra=extra, **kw)


def test_sse_lines_have_a_space_before_the_newline_and_no_nulls(serve: Callable[..., Any]) -> None:
    server = serve(replica_app("trtllm", "m", FAST))
    raw = httpx.post(f"{server.url}/v1/completions", json={
        "model": "m", "prompt": "hi", "max_tokens": 3, "stream": True, "ignore_eos": True}).content
    events = [p for p in raw.split(b"\n\n") if p]
    assert all(p.endswith(b" ") for p in events[:-1])
    assert events[-1] == b"data: [DONE]"
    assert b"null" not in raw


def test_unknown_request_fields_are_refused_with_400(serve: Callable[..., Any]) -> None:
    server = serve(replica_app("trtllm", "m", FAST))
    resp = httpx.post(f"{server.url}/v1/chat/completions", json={
        "model": "m", "messages": [{"role": "user", "content": "x"}], "rid": "nope"})
    assert resp.status_code == 400
    assert isinstance(resp.json()["error"], str)
    assert "Extra inputs are not permitted" in resp.json()["error"]


def test_adapter_sends_only_accepted_fields(serve: Callable[..., Any], drive: Any) -> None:
    server = serve(replica_app("trtllm", "m", FAST))
    backend = TrtllmBackend("t", TrtllmOptions(url=server.url))
    body = backend.build_call(chat()).body
    assert "best_effort_unknown" not in body
    assert body["top_k"] == 3
    events = drive(backend, chat())
    done = events[-1]
    assert isinstance(done, Completed)
    assert done.completion_tokens == 5
    assert sum(e.tokens for e in events if isinstance(e, Delta)) == 5


def test_priority_maps_to_the_float_scale_higher_first() -> None:
    assert trtllm_priority(0, 10) == 0.5
    assert trtllm_priority(10, 10) == 1.0
    assert trtllm_priority(-10, 10) == 0.0
    assert trtllm_priority(99, 10) == 1.0
    assert trtllm_priority(2, 10) > trtllm_priority(1, 10)
    body = TrtllmBackend("t", TrtllmOptions(url="http://x:1")).build_call(chat(priority=5)).body
    assert body["priority"] == 0.75


def test_crash_mid_stream_cuts_the_connection_and_is_one_failure(serve: Callable[..., Any], drive: Any) -> None:
    server = serve(replica_app("trtllm", "m", FAST))
    with httpx.stream("POST", f"{server.url}/v1/completions", json={
            "model": "m", "prompt": "[[sim:fail_after=2]]", "max_tokens": 5, "stream": True,
            "ignore_eos": True}) as resp:
        got = b""
        try:
            for part in resp.iter_raw():
                got += part
        except httpx.RemoteProtocolError:
            pass
    assert b"[DONE]" not in got
    assert b"error" not in got
    events = drive(TrtllmBackend("t", TrtllmOptions(url=server.url)), chat("[[sim:fail_after=2]]"))
    terminal = [e for e in events if isinstance(e, Failed | Completed)]
    assert len(terminal) == 1
    assert isinstance(terminal[0], Failed)
    assert not terminal[0].retryable


def test_context_overflow_flat_error_is_mapped(serve: Callable[..., Any], drive: Any) -> None:
    server = serve(replica_app("trtllm", "m", FAST))
    events = drive(TrtllmBackend("t", TrtllmOptions(url=server.url)), chat("w " * 100))
    f = events[-1]
    assert isinstance(f, Failed)
    assert f.code == "context_length_exceeded"
    assert "64" in f.message


def test_health_and_load_from_prometheus_metrics(serve: Callable[..., Any]) -> None:
    server = serve(replica_app("trtllm", "m", {"ttft_ms": 1, "tpot_ms": 500}))

    async def go() -> tuple[Any, Any]:
        backend = TrtllmBackend("t", TrtllmOptions(url=server.url, poll_interval_s=0.05))
        await backend.start()
        gen = backend.generate(chat())
        await anext(gen)
        await anext(gen)
        load = await until(backend.load, lambda v: v is not None and v.running == 1)
        health = await backend.health()
        await gen.aclose()
        await backend.close()
        return health, load

    health, load = asyncio.run(go())
    assert health.ok
    assert load is not None
    assert load.running == 1


def test_triton_generate_stream(serve: Callable[..., Any], drive: Any) -> None:
    server = serve(replica_app("trtllm", "m", FAST))
    backend = TrtllmBackend("t", TrtllmOptions(url=server.url, protocol="triton"))
    request = GenerationRequest(request_id="x", model="m", operation="text_completion", max_tokens=4,
                                prompt="hello", extra={"ignore_eos": True})
    assert backend.build_call(request).path == "/v2/models/ensemble/generate_stream"
    events = drive(backend, request, start=True)
    done = events[-1]
    assert isinstance(done, Completed)
    assert done.completion_tokens == 4
    assert done.finish_reasons == ("length",)


def test_triton_error_chunk_mid_stream(serve: Callable[..., Any], drive: Any) -> None:
    server = serve(replica_app("trtllm", "m", FAST))
    backend = TrtllmBackend("t", TrtllmOptions(url=server.url, protocol="triton"))
    request = GenerationRequest(request_id="x", model="m", operation="text_completion", max_tokens=6,
                                prompt="[[sim:fail_after=2]]", extra={"ignore_eos": True})
    events = drive(backend, request)
    assert isinstance(events[-1], Failed)
    assert not events[-1].retryable
