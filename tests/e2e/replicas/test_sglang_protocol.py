"""The sglang adapter against the SGLang protocol replica: each quirk of SGLang's protocol pinned."""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Callable
from typing import Any

import httpx
import msgspec

from backends.events import Completed, Delta, Failed
from backends.replicas.server import replica_app
from backends.request import ChatMessage, GenerationRequest
from backends.sglang import SglangBackend, SglangOptions
from backends.sglang.native import generate_call
from tests.support.servers import until

FAST = {"ttft_ms": 1, "tpot_ms": 1, "max_model_len": 64, "tokens_per_chunk": 2}


def completion(prompt: str = "tell me", **kw: Any) -> GenerationRequest:
    return GenerationRequest(request_id="rid-7", model="m", operation="text_completion", max_tokens=7,
                             prompt=prompt, extra={"ignore_eos": True, "min_tokens": 2, "top_k": 4}, **kw)


def chunks(raw: bytes) -> list[Any]:
    return [msgspec.json.decode(p.removeprefix(b"data: ")) for p in raw.split(b"\n\n")
            if p and p != b"data: [DONE]"]


def test_native_request_mapping() -> None:
    call = generate_call(completion(temperature=0.2, stop=("END",)))
    assert call.path == "/generate"
    assert call.body["rid"] == "rid-7"
    assert call.body["stream"] is True
    assert call.body["text"] == "tell me"
    assert call.body["sampling_params"] == {"max_new_tokens": 7, "temperature": 0.2, "stop": ["END"],
                                            "top_k": 4, "ignore_eos": True, "min_new_tokens": 2}


def test_native_stream_text_is_cumulative_and_finish_reason_an_object(serve: Callable[..., Any]) -> None:
    server = serve(replica_app("sglang", "m", FAST))
    body = {"text": "tell me", "sampling_params": {"max_new_tokens": 5, "ignore_eos": True}, "stream": True}
    raw = httpx.post(f"{server.url}/generate", json=body).content
    assert raw.endswith(b"data: [DONE]\n\n")
    got = chunks(raw)
    texts = [c["text"] for c in got]
    assert all(b.startswith(a) for a, b in itertools.pairwise(texts))  # whole text so far
    assert [c["meta_info"]["completion_tokens"] for c in got] == [2, 4, 5, 5]
    assert got[-1]["meta_info"]["finish_reason"] == {"type": "length", "length": 5}


def test_adapter_turns_cumulative_text_into_deltas_with_exact_counts(serve: Callable[..., Any], drive: Any) -> None:
    server = serve(replica_app("sglang", "m", FAST))
    events = drive(SglangBackend("s", SglangOptions(url=server.url)), completion())
    deltas = [e for e in events if isinstance(e, Delta)]
    assert [d.tokens for d in deltas] == [2, 2, 2, 1]
    raw = httpx.post(f"{server.url}/generate", json={
        "text": "tell me", "sampling_params": {"max_new_tokens": 7, "ignore_eos": True}, "stream": True}).content
    assert "".join(d.text for d in deltas) == chunks(raw)[-1]["text"]
    done = events[-1]
    assert isinstance(done, Completed)
    assert done.finish_reasons == ("length",)
    assert done.completion_tokens == 7
    assert done.prompt_tokens == 2


def test_native_context_error_is_mapped(serve: Callable[..., Any], drive: Any) -> None:
    server = serve(replica_app("sglang", "m", FAST))
    resp = httpx.post(f"{server.url}/generate", json={"text": "w " * 100, "stream": True})
    assert resp.status_code == 400
    assert set(resp.json()) == {"error"}
    assert "message" in resp.json()["error"]
    events = drive(SglangBackend("s", SglangOptions(url=server.url)), completion("w " * 100))
    f = events[-1]
    assert isinstance(f, Failed)
    assert f.code == "context_length_exceeded"
    assert f.param == "prompt"
    assert "64" in f.message


def test_openai_endpoint_errors_are_flat_outside_the_stream(serve: Callable[..., Any]) -> None:
    server = serve(replica_app("sglang", "m", FAST))
    resp = httpx.post(f"{server.url}/v1/completions", json={"model": "m", "prompt": "w " * 100})
    assert resp.status_code == 400
    assert resp.json()["object"] == "error"
    assert resp.json()["code"] == 400


def test_openai_endpoint_errors_are_nested_inside_the_stream(serve: Callable[..., Any], drive: Any) -> None:
    server = serve(replica_app("sglang", "m", FAST))
    raw = httpx.post(f"{server.url}/v1/completions", json={
        "model": "m", "prompt": "[[sim:fail_after=2]]", "max_tokens": 6, "stream": True, "ignore_eos": True}).content
    assert "error" in chunks(raw)[-1]
    assert isinstance(chunks(raw)[-1]["error"], dict)
    events = drive(SglangBackend("s", SglangOptions(url=server.url, protocol="openai")),
                   completion("[[sim:fail_after=2]]"))
    terminal = [e for e in events if isinstance(e, Failed | Completed)]
    assert len(terminal) == 1
    assert isinstance(terminal[0], Failed)
    assert not terminal[0].retryable


def test_native_mid_stream_error_is_one_failure(serve: Callable[..., Any], drive: Any) -> None:
    server = serve(replica_app("sglang", "m", FAST))
    events = drive(SglangBackend("s", SglangOptions(url=server.url)), completion("[[sim:fail_after=2]]"))
    terminal = [e for e in events if isinstance(e, Failed | Completed)]
    assert len(terminal) == 1
    assert isinstance(terminal[0], Failed)
    assert not terminal[0].retryable
    assert any(isinstance(e, Delta) for e in events)


def test_chat_goes_to_the_openai_endpoint_where_the_template_lives(serve: Callable[..., Any], drive: Any) -> None:
    server = serve(replica_app("sglang", "m", FAST))
    request = GenerationRequest(request_id="c1", model="m", operation="chat", max_tokens=4,
                                messages=(ChatMessage("user", "hi"),), extra={"ignore_eos": True})
    backend = SglangBackend("s", SglangOptions(url=server.url))
    assert backend.build_call(request).path == "/v1/chat/completions"
    events = drive(backend, request)
    assert isinstance(events[-1], Completed)
    assert events[-1].completion_tokens == 4


def test_overload_before_first_token_is_retryable(serve: Callable[..., Any], drive: Any) -> None:
    server = serve(replica_app("sglang", "m", FAST))
    events = drive(SglangBackend("s", SglangOptions(url=server.url)), completion("[[sim:fail_before]]"))
    assert isinstance(events[-1], Failed)
    assert events[-1].retryable


def test_health_and_load_from_v1_loads(serve: Callable[..., Any]) -> None:
    server = serve(replica_app("sglang", "m", {"ttft_ms": 1, "tpot_ms": 500}))

    async def go() -> tuple[Any, Any]:
        backend = SglangBackend("s", SglangOptions(url=server.url, poll_interval_s=0.05,
                                                   health_path="/health_generate"))
        await backend.start()
        gen = backend.generate(completion())
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
    assert load.kv_cache_usage is not None


class LoadsAnswer500:
    """SGLang 0.5.15 under --enable-metrics, as the GPU bake-off met it: its HTTP-metrics middleware raises on
    ``/v1/loads`` (``'_IncludedRouter' object has no attribute 'path'``) and the route answers 500; every other route
    works. Counts what reached each path."""

    def __init__(self, app: Any) -> None:
        self.app = app
        self.hits: dict[str, int] = {}

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "http":
            self.hits[scope["path"]] = self.hits.get(scope["path"], 0) + 1
            if scope["path"] == "/v1/loads":
                await send({"type": "http.response.start", "status": 500,
                            "headers": [(b"content-type", b"text/plain")]})
                await send({"type": "http.response.body", "body": b"Internal Server Error"})
                return
        await self.app(scope, receive, send)


def test_load_falls_back_to_metrics_where_v1_loads_fails_and_stops_asking_it(serve: Callable[..., Any]) -> None:
    wrapped = LoadsAnswer500(replica_app("sglang", "m", {"ttft_ms": 1, "tpot_ms": 500}))
    server = serve(wrapped)

    async def go() -> Any:
        backend = SglangBackend("s", SglangOptions(url=server.url, model="m", poll_interval_s=0.02))
        await backend.start()
        gen = backend.generate(completion())
        await anext(gen)
        await anext(gen)
        load = await until(backend.load, lambda v: v is not None and v.running == 1)
        await asyncio.sleep(0.3)  # more polls: /metrics each time, /v1/loads only every LOADS_RETRY_POLLS
        await gen.aclose()
        await backend.close()
        return load

    load = asyncio.run(go())
    assert load is not None
    assert load.running == 1
    assert load.kv_cache_usage is not None
    assert wrapped.hits.get("/metrics", 0) >= 5
    assert wrapped.hits.get("/v1/loads", 0) <= 2, wrapped.hits
