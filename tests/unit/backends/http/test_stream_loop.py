"""The shared stream loop (driven through the vllm adapter over a MockTransport): deltas, timestamps, errors,
cut streams, timeouts, CLIENT span and traceparent."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from typing import Any

import httpx
import msgspec
import pytest
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.sdk.trace.sampling import ParentBased, TraceIdRatioBased
from opentelemetry.trace import SpanKind

from backends.events import Completed, Delta, Event, Failed, Started
from backends.request import ChatMessage, GenerationRequest
from backends.vllm import VllmBackend, VllmOptions

Handler = Callable[[httpx.Request], Any]


def chat(**kw: Any) -> GenerationRequest:
    return GenerationRequest(request_id="req-1", model="m", operation="chat", max_tokens=8,
                             messages=(ChatMessage("user", "hi"),), **kw)


def completion(**kw: Any) -> GenerationRequest:
    return GenerationRequest(request_id="req-1", model="m", operation="text_completion", max_tokens=8,
                             prompt="hi", **kw)


def chunk(text: str | None = None, *, done: int | None = None, finish: str | None = None,
          role: bool = False) -> bytes:
    delta: dict[str, Any] = {"role": "assistant", "content": ""} if role else {"content": text}
    obj: dict[str, Any] = {"choices": [{"index": 0, "delta": delta, "finish_reason": finish}]}
    if done is not None:
        obj["usage"] = {"prompt_tokens": 3, "completion_tokens": done, "total_tokens": 3 + done}
    return b"data: " + msgspec.json.encode(obj) + b"\n\n"


USAGE = b'data: {"choices":[],"usage":{"prompt_tokens":3,"completion_tokens":3,"total_tokens":6}}\n\n'


def sse(*parts: bytes, delay: float = 0.0) -> Handler:
    async def body() -> AsyncIterator[bytes]:
        for p in parts:
            if delay:
                await asyncio.sleep(delay)
            yield p

    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, headers={"content-type": "text/event-stream"}, content=body())

    return handler


def run(handler: Handler, request: GenerationRequest | None = None, **opts: Any) -> list[Event]:
    async def go() -> list[Event]:
        backend = VllmBackend("v", VllmOptions(**{"url": "http://engine:8000", "model": "m", **opts}),
                              transport=httpx.MockTransport(handler))
        try:
            return [e async for e in backend.generate(request or chat())]
        finally:
            await backend.close()

    return asyncio.run(go())


def test_role_chunk_is_not_a_token_and_counts_come_from_continuous_usage() -> None:
    events = run(sse(chunk(role=True, done=0), chunk("Hel", done=1), chunk("lo wor", done=3),
                     chunk("", done=3, finish="length"), USAGE, b"data: [DONE]\n\n"),
                 continuous_usage=True, token_ids=False)
    assert isinstance(events[0], Started)
    deltas = [e for e in events if isinstance(e, Delta)]
    assert [(d.text, d.tokens) for d in deltas] == [("Hel", 1), ("lo wor", 2)]
    assert all(d.t_ns > 0 for d in deltas)
    assert deltas[0].t_ns <= deltas[1].t_ns
    assert events[-1] == Completed(finish_reasons=("length",), prompt_tokens=3, completion_tokens=3)


def ids_chunk(*choices: tuple[int, str, list[int], str | None]) -> bytes:
    """A completions chunk as vLLM writes it with return_token_ids: each choice's token ids of this delta."""
    return b"data: " + msgspec.json.encode({"choices": [
        {"index": i, "text": t, "logprobs": None, "finish_reason": f, "stop_reason": None, "token_ids": ids}
        for i, t, ids, f in choices]}) + b"\n\n"


def test_token_ids_count_each_delta_exactly_without_per_chunk_usage() -> None:
    # vLLM merges decode steps into one chunk when its API server falls behind: "lo wor" is two tokens.
    events = run(sse(ids_chunk((0, "Hel", [11], None)), ids_chunk((0, "lo wor", [12, 13], None)),
                     ids_chunk((0, "", [], "length")), USAGE, b"data: [DONE]\n\n"),
                 completion(), continuous_usage=False, token_ids=True)
    deltas = [e for e in events if isinstance(e, Delta)]
    assert [(d.text, d.tokens) for d in deltas] == [("Hel", 1), ("lo wor", 2)]
    assert events[-1] == Completed(finish_reasons=("length",), prompt_tokens=3, completion_tokens=3)


def test_token_ids_count_every_choice_of_n_where_usage_counts_only_the_first() -> None:
    usage = b'data: {"choices":[],"usage":{"prompt_tokens":3,"completion_tokens":5,"total_tokens":8}}\n\n'
    events = run(sse(ids_chunk((0, "a b", [1, 2], None)), ids_chunk((1, "c", [3], None)),
                     ids_chunk((1, " d e", [4, 5], "length")), ids_chunk((0, "", [], "length")), usage,
                     b"data: [DONE]\n\n"),
                 completion(n=2), continuous_usage=False, token_ids=True)
    deltas = [(e.index, e.tokens) for e in events if isinstance(e, Delta)]
    assert deltas == [(0, 2), (1, 1), (1, 2)]
    assert events[-1] == Completed(finish_reasons=("length", "length"), prompt_tokens=3, completion_tokens=5)


def test_token_ids_option_asks_vllm_for_them_and_usage_only_at_the_end() -> None:
    seen: dict[str, Any] = {}

    def handler(request: httpx.Request) -> httpx.Response:
        seen.update(msgspec.json.decode(request.content))
        return sse(ids_chunk((0, "x", [7], "length")), USAGE, b"data: [DONE]\n\n")(request)

    run(handler, completion(), continuous_usage=False, token_ids=True)
    assert seen["return_token_ids"] is True
    assert seen["stream_options"] == {"include_usage": True}
    seen.clear()
    run(handler, completion(), continuous_usage=True, token_ids=False)
    assert "return_token_ids" not in seen
    assert seen["stream_options"] == {"include_usage": True, "continuous_usage_stats": True}


def test_error_object_inside_a_200_stream_after_tokens_is_one_non_retryable_failure() -> None:
    events = run(sse(chunk("a", done=1), b'data: {"error":{"message":"engine died","code":500}}\n\n',
                     b"data: [DONE]\n\n"))
    assert isinstance(events[-1], Failed)
    assert not events[-1].retryable
    assert sum(isinstance(e, Failed | Completed) for e in events) == 1


def test_error_object_before_any_token_is_retryable() -> None:
    events = run(sse(b'data: {"error":{"message":"overloaded","code":503}}\n\n'))
    assert isinstance(events[-1], Failed)
    assert events[-1].retryable
    assert events[-1].status == 503


def test_stream_that_stops_without_finishing_fails() -> None:
    events = run(sse(chunk("a", done=1), chunk("b", done=2)))
    assert isinstance(events[-1], Failed)
    assert not events[-1].retryable
    assert "ended" in events[-1].message


def test_missing_done_after_a_finished_stream_still_completes() -> None:
    events = run(sse(chunk("a", done=1, finish="stop"), USAGE))
    assert isinstance(events[-1], Completed)
    assert events[-1].finish_reasons == ("stop",)


def test_engine_503_before_streaming_is_retryable() -> None:
    events = run(lambda r: httpx.Response(503, json={"error": {"message": "busy", "code": 503}}))
    assert isinstance(events[-1], Failed)
    assert events[-1].retryable
    assert events[-1].status == 503


def test_connection_refused_is_retryable() -> None:
    async def go() -> list[Event]:
        backend = VllmBackend("v", VllmOptions(url="http://127.0.0.1:9", connect_timeout_s=1))
        try:
            return [e async for e in backend.generate(chat())]
        finally:
            await backend.close()

    events = asyncio.run(go())
    assert isinstance(events[-1], Failed)
    assert events[-1].retryable
    assert events[-1].status == 503


def test_no_first_token_within_ttft_timeout_fails_retryable() -> None:
    events = run(sse(chunk(role=True), chunk("late", done=1), delay=0.3), ttft_timeout_s=0.1)
    assert isinstance(events[-1], Failed)
    assert events[-1].status == 504
    assert events[-1].retryable


def test_silence_between_chunks_past_idle_timeout_fails_non_retryable() -> None:
    async def body() -> AsyncIterator[bytes]:
        yield chunk("a", done=1)
        await asyncio.sleep(0.5)
        yield chunk("b", done=2)

    events = run(lambda r: httpx.Response(200, content=body()), idle_timeout_s=0.1)
    assert isinstance(events[-1], Failed)
    assert events[-1].status == 504
    assert not events[-1].retryable
    assert [e.text for e in events if isinstance(e, Delta)] == ["a"]


def test_request_body_headers_and_client_span_with_traceparent() -> None:
    seen: dict[str, Any] = {}

    def handler(request: httpx.Request) -> httpx.Response:
        seen["headers"] = dict(request.headers)
        seen["body"] = msgspec.json.decode(request.content)
        return sse(chunk("a", done=1, finish="stop"), USAGE, b"data: [DONE]\n\n")(request)

    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracer = provider.get_tracer("test")

    async def go() -> None:
        backend = VllmBackend("v", VllmOptions(url="http://engine:8000", model="served"),
                              transport=httpx.MockTransport(handler))
        backend.use_tracer(tracer)
        with tracer.start_as_current_span("process v", kind=SpanKind.CONSUMER):
            async for _ in backend.generate(chat(temperature=0.5, extra={"top_k": 5, "ignore_eos": True})):
                pass
        await backend.close()

    asyncio.run(go())
    spans = {s.kind: s for s in exporter.get_finished_spans()}
    client, consumer = spans[SpanKind.CLIENT], spans[SpanKind.CONSUMER]
    assert client.parent is not None
    assert client.parent.span_id == consumer.context.span_id
    assert client.name == "POST http://engine:8000/v1/chat/completions"
    assert client.attributes is not None
    assert (client.attributes["server.address"], client.attributes["server.port"],
            client.attributes["gen_ai.provider.name"]) == ("engine", 8000, "vllm")
    assert client.attributes["lockgate.engine.connection_kept"] is True  # the body was read to its end
    assert client.attributes["lockgate.engine.client"] == "httpx"  # a transport handed in carries the request
    trace_id, span_id = format(client.context.trace_id, "032x"), format(client.context.span_id, "016x")
    assert seen["headers"]["traceparent"].startswith(f"00-{trace_id}-{span_id}-")
    assert seen["headers"]["x-request-id"] == "req-1"
    body = seen["body"]
    assert body["model"] == "served"
    assert body["top_k"] == 5
    assert body["ignore_eos"] is True
    assert body["stream_options"] == {"include_usage": True}  # usage once; each delta counted by its token ids
    assert body["return_token_ids"] is True
    assert "priority" not in body


def test_the_engine_request_carries_the_configured_headers_path_prefix_and_timeouts() -> None:
    # Generation requests go to the pooled transport without httpx.AsyncClient, so what the client used to add
    # is the adapter's to add: the configured headers (an engine --api-key), the URL's path as a prefix (as a
    # client base_url makes it), and the connect/write/pool limits with no read timeout.
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return sse(chunk("a", done=1, finish="stop"), USAGE, b"data: [DONE]\n\n")(request)

    events = run(handler, url="http://engine:8000/proxy/", headers={"Authorization": "Bearer k"},
                 connect_timeout_s=1.5, write_timeout_s=2.5, pool_timeout_s=3.5)
    assert isinstance(events[-1], Completed)
    (request,) = seen
    assert str(request.url) == "http://engine:8000/proxy/v1/chat/completions"
    assert request.headers["authorization"] == "Bearer k"
    assert request.headers["content-type"] == "application/json"
    assert request.headers["accept"] == "text/event-stream"
    assert request.headers["host"] == "engine:8000"
    assert request.headers["content-length"] == str(len(request.content))
    assert request.extensions["timeout"] == {"connect": 1.5, "read": None, "write": 2.5, "pool": 3.5}


def test_probes_and_streams_share_one_connection_pool() -> None:
    async def go() -> None:
        backend = VllmBackend("v", VllmOptions(url="http://127.0.0.1:1", model="m"))
        try:
            assert backend.client._transport is backend.transport  # type: ignore[attr-defined]
        finally:
            await backend.close()

    asyncio.run(go())


@pytest.mark.parametrize(("propagation", "sampled", "sent"), [
    ("always", True, True), ("always", False, True), ("sampled", True, True), ("sampled", False, False),
    ("never", True, False), ("never", False, False)])
def test_trace_propagation_decides_when_the_engine_gets_a_traceparent(
        propagation: str, sampled: bool, sent: bool) -> None:
    seen: list[str | None] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request.headers.get("traceparent"))
        return sse(chunk("a", done=1, finish="stop"), USAGE, b"data: [DONE]\n\n")(request)

    # The gateway's ratio sampler: a trace it records (1.0) or one it does not (0.0), whose context is still valid.
    provider = TracerProvider(sampler=ParentBased(TraceIdRatioBased(1.0 if sampled else 0.0)))
    exporter = InMemorySpanExporter()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracer = provider.get_tracer("test")

    async def go() -> None:
        backend = VllmBackend("v", VllmOptions(url="http://engine:8000", model="served",
                                               trace_propagation=propagation),  # type: ignore[arg-type]
                              transport=httpx.MockTransport(handler))
        backend.use_tracer(tracer)
        with tracer.start_as_current_span("process v", kind=SpanKind.CONSUMER):
            async for _ in backend.generate(chat()):
                pass
        await backend.close()

    asyncio.run(go())
    assert len(seen) == 1
    if sent:
        assert seen[0] is not None
        assert int(seen[0].rsplit("-", 1)[1], 16) & 1 == sampled  # W3C's sampled flag (bit 0)
    else:
        assert seen[0] is None
    if sampled:  # a recorded CLIENT span says whether the engine joined the trace
        client = next(s for s in exporter.get_finished_spans() if s.kind == SpanKind.CLIENT)
        assert client.attributes is not None
        assert client.attributes["lockgate.engine.traceparent_sent"] is sent


def test_an_unknown_trace_propagation_is_a_config_error() -> None:
    with pytest.raises(msgspec.ValidationError, match="trace_propagation"):
        msgspec.convert({"url": "http://engine:8000", "trace_propagation": "sometimes"}, VllmOptions)


def test_cancellation_closes_the_engine_stream() -> None:
    closed = asyncio.Event()

    async def body() -> AsyncIterator[bytes]:
        try:
            yield chunk("a", done=1)
            await asyncio.sleep(30)
            yield chunk("never", done=2)
        finally:
            closed.set()

    async def go() -> None:
        backend = VllmBackend("v", VllmOptions(url="http://engine:8000"),
                              transport=httpx.MockTransport(lambda r: httpx.Response(200, content=body())))
        first_token = asyncio.Event()

        async def consume() -> None:
            async for e in backend.generate(chat()):
                if isinstance(e, Delta):
                    first_token.set()

        task = asyncio.create_task(consume())
        await asyncio.wait_for(first_token.wait(), 5)
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await asyncio.wait_for(closed.wait(), 2)
        await backend.close()

    asyncio.run(go())
