"""The vllm adapter against the vLLM protocol replica; the replica's wire details pinned byte for byte."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import httpx
import msgspec

from backends.events import Completed, Delta, Failed
from backends.replicas.server import replica_app
from backends.request import ChatMessage, GenerationRequest
from backends.sim import SimBackend, SimOptions
from backends.vllm import VllmBackend, VllmOptions
from tests.support.servers import until

FAST = {"ttft_ms": 1, "tpot_ms": 1, "max_model_len": 64}


def chat(content: str = "hello there", **kw: Any) -> GenerationRequest:
    return GenerationRequest(request_id="r1", model="tiny", operation="chat", max_tokens=6,
                             messages=(ChatMessage("user", content),), extra={"ignore_eos": True}, **kw)


def sse_lines(raw: bytes) -> list[bytes]:
    return [line for line in raw.split(b"\n\n") if line]


def test_chat_stream_wire_format(serve: Callable[..., Any]) -> None:
    server = serve(replica_app("vllm", "tiny", FAST))
    body = {"model": "tiny", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 3, "stream": True,
            "ignore_eos": True, "stream_options": {"include_usage": True}}
    raw = httpx.post(f"{server.url}/v1/chat/completions", json=body).content
    lines = sse_lines(raw)
    first = msgspec.json.decode(lines[0].removeprefix(b"data: "))
    assert first["choices"][0]["delta"] == {"role": "assistant", "content": ""}
    usage = msgspec.json.decode(lines[-2].removeprefix(b"data: "))
    assert usage["choices"] == []
    assert usage["usage"]["completion_tokens"] == 3
    assert lines[-1] == b"data: [DONE]"
    assert not raw.endswith(b" \n\n")


def test_adapter_streams_the_simulators_text_with_exact_usage(serve: Callable[..., Any], drive: Any) -> None:
    server = serve(replica_app("vllm", "tiny", FAST))
    events = drive(VllmBackend("v", VllmOptions(url=server.url, model="tiny")), chat())
    deltas = [e for e in events if isinstance(e, Delta)]
    done = events[-1]
    assert isinstance(done, Completed)
    assert done.completion_tokens == 6 == sum(d.tokens for d in deltas)

    async def direct() -> str:
        sim = SimBackend("s", SimOptions(**FAST))
        await sim.start()
        return "".join([e.text async for e in sim.generate(chat()) if isinstance(e, Delta)])

    assert "".join(d.text for d in deltas) == asyncio.run(direct())


def test_nested_error_mid_stream_then_done(serve: Callable[..., Any], drive: Any) -> None:
    server = serve(replica_app("vllm", "tiny", FAST))
    body = {"model": "tiny", "prompt": "x [[sim:fail_after=2]]", "max_tokens": 6, "stream": True,
            "ignore_eos": True}
    lines = sse_lines(httpx.post(f"{server.url}/v1/completions", json=body).content)
    assert msgspec.json.decode(lines[-2].removeprefix(b"data: "))["error"]["code"] == 500
    assert lines[-1] == b"data: [DONE]"
    events = drive(VllmBackend("v", VllmOptions(url=server.url, model="tiny")),
                   chat("x [[sim:fail_after=2]]"))
    failures = [e for e in events if isinstance(e, Failed | Completed)]
    assert len(failures) == 1
    assert isinstance(failures[0], Failed)
    assert not failures[0].retryable


def test_context_overflow_is_400_context_length_exceeded(serve: Callable[..., Any], drive: Any) -> None:
    server = serve(replica_app("vllm", "tiny", FAST))
    events = drive(VllmBackend("v", VllmOptions(url=server.url, model="tiny")), chat("word " * 100))
    f = events[-1]
    assert isinstance(f, Failed)
    assert f.status == 400
    assert f.code == "context_length_exceeded"
    assert "maximum context length is 64 tokens" in f.message


def test_failure_before_first_token_is_retryable(serve: Callable[..., Any], drive: Any) -> None:
    server = serve(replica_app("vllm", "tiny", FAST))
    events = drive(VllmBackend("v", VllmOptions(url=server.url, model="tiny")), chat("[[sim:fail_before]]"))
    assert isinstance(events[-1], Failed)
    assert events[-1].retryable
    assert events[-1].status == 503


def test_health_and_load_from_health_and_metrics(serve: Callable[..., Any]) -> None:
    server = serve(replica_app("vllm", "tiny", {"ttft_ms": 1, "tpot_ms": 500}))

    async def go() -> tuple[Any, Any, Any]:
        backend = VllmBackend("v", VllmOptions(url=server.url, model="tiny", poll_interval_s=0.05))
        await backend.start()
        gen = backend.generate(chat())
        await anext(gen)  # Started
        await anext(gen)  # first Delta: the request is running in the engine
        busy = await until(backend.load, lambda v: v is not None and v.running == 1)
        health = await backend.health()
        await gen.aclose()  # cancellation: the replica notices the disconnect and stops generating
        idle = await until(backend.load, lambda v: v is not None and v.running == 0)
        await backend.close()
        return health, busy, idle

    health, busy, idle = asyncio.run(go())
    assert health.ok
    assert busy is not None
    assert busy.running == 1
    assert idle is not None
    assert idle.running == 0
    assert idle.waiting == 0


def test_unreachable_engine_is_down() -> None:
    async def go() -> Any:
        backend = VllmBackend("v", VllmOptions(url="http://127.0.0.1:9", connect_timeout_s=0.5))
        await backend.start()
        health = await backend.health()
        await backend.close()
        return health

    health = asyncio.run(go())
    assert not health.ok
    assert "connection refused" in health.reason


def test_vllm_replica_sends_token_ids_as_vllm_does_and_the_adapter_counts_them(serve: Callable[[Any], Any]) -> None:
    # vLLM's return_token_ids wire as the replica reproduces it (checked against vLLM 0.32's CPU build: ids on
    # every choice, the prompt's once; nulls when not asked).
    server = serve(replica_app("vllm", "m", {"ttft_ms": 1, "tpot_ms": 1, "max_model_len": 64,
                                             "tokens_per_chunk": 2}))
    body = {"model": "m", "prompt": "hi", "max_tokens": 6, "stream": True, "return_token_ids": True}
    with httpx.stream("POST", f"{server.url}/v1/completions", json=body, timeout=10) as resp:
        chunks = [msgspec.json.decode(line[6:]) for line in resp.iter_lines() if line.startswith("data: {")]
    ids = [c["choices"][0]["token_ids"] for c in chunks]
    assert [i for part in ids for i in part] == list(range(6))
    assert chunks[0]["choices"][0]["prompt_token_ids"]
    assert chunks[1]["choices"][0]["prompt_token_ids"] is None

    async def go() -> list[int]:
        backend = VllmBackend("v", VllmOptions(url=server.url, model="m", continuous_usage=False, token_ids=True,
                                               poll_interval_s=3600))
        try:
            request = GenerationRequest(request_id="r", model="m", operation="text_completion", max_tokens=4,
                                        prompt="hi")
            return [e.tokens for e in [e async for e in backend.generate(request)] if isinstance(e, Delta)]
        finally:
            await backend.close()

    assert asyncio.run(go()) == [2, 2]  # max_tokens 4, two tokens per chunk: exact without per-chunk usage
