"""The lean engine client (backends/http/lean.py, ``client = "lean"``) under the vllm adapter, against real
sockets on asyncio's loop and uvloop's: the same events as the httpx path, the bytes it sends, kept connections
and their limits, every failure mapped as the adapters map httpx's, cancellation, TLS."""

from __future__ import annotations

import asyncio
import socket
import ssl
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import httpx
import msgspec
import pytest
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from backends.events import Completed, Delta, Event, Failed, Started
from backends.http.lean import LeanPool
from backends.http.options import HttpOptions
from backends.request import GenerationRequest
from backends.vllm import VllmBackend, VllmOptions
from tests.support.raw_http import Handler, read_request
from tests.support.raw_http import serve as serve_on_port

Run = Callable[[Awaitable[Any]], Any]


def token(i: int, *, finish: str | None = None) -> bytes:
    obj = {"id": "cmpl-1", "object": "text_completion", "choices": [
        {"index": 0, "text": f"t{i} ", "token_ids": [i], "finish_reason": finish}]}
    return b"data: " + msgspec.json.encode(obj) + b"\n\n"


USAGE = b'data: {"choices":[],"usage":{"prompt_tokens":3,"completion_tokens":4,"total_tokens":7}}\n\n'
STREAM = [token(0), token(1), token(2), token(3, finish="length"), USAGE, b"data: [DONE]\n\n"]


def chunked_response(parts: list[bytes], *, extra_head: bytes = b"") -> bytes:
    body = b"".join(frame(p) for p in parts) + b"0\r\n\r\n"
    return b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ntransfer-encoding: chunked\r\n" + extra_head + \
        b"\r\n" + body


async def serve(handler: Handler, ssl_context: ssl.SSLContext | None = None) -> tuple[asyncio.Server, str]:
    server, port = await serve_on_port(handler, ssl_context)
    return server, f"127.0.0.1:{port}"


def frame(part: bytes) -> bytes:
    """One chunk of a chunked body."""
    return b"%x\r\n%s\r\n" % (len(part), part)


CHUNKED_HEAD = b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n"


def streaming(parts: list[bytes] = STREAM, *, per_write: bool = True, delay: float = 0.0) -> Handler:
    """Answers every request on a connection with ``parts`` as a chunked SSE stream (one write per part, ``delay``
    apart, or all in one), keeping the connection open."""
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while True:
            try:
                await read_request(reader)
            except asyncio.IncompleteReadError:
                return
            if per_write:
                writer.write(CHUNKED_HEAD)
                for p in parts:
                    if delay:
                        await asyncio.sleep(delay)
                    writer.write(frame(p))
                    await writer.drain()
                writer.write(b"0\r\n\r\n")
            else:
                writer.write(chunked_response(parts))
            await writer.drain()

    return handler


def request(i: int = 0) -> GenerationRequest:
    return GenerationRequest(request_id=f"r{i}", model="m", operation="text_completion", prompt="hi", max_tokens=4,
                             extra={"ignore_eos": True})


async def generate(backend: VllmBackend, i: int = 0) -> list[Event]:
    return [e async for e in backend.generate(request(i))]


def lean(where: str, **opts: Any) -> VllmBackend:
    return VllmBackend("v", VllmOptions(**{"url": f"http://{where}", "model": "m", "client": "lean",
                                           "poll_interval_s": 3600, **opts}))


def shape(events: list[Event]) -> list[Any]:
    """Events without their timestamps."""
    out: list[Any] = []
    for e in events:
        if isinstance(e, Delta):
            out.append(("delta", e.text, e.tokens))
        elif isinstance(e, Completed):
            out.append(("done", e.finish_reasons, e.prompt_tokens, e.completion_tokens))
        elif isinstance(e, Started):
            out.append(("started", e.backend, e.engine))
        else:
            out.append(e)
    return out


def test_the_same_events_as_the_httpx_client_in_any_chunking(run: Run) -> None:
    async def go() -> None:
        for per_write in (True, False):
            server, where = await serve(streaming(per_write=per_write))
            via_lean, via_httpx = lean(where), VllmBackend("v", VllmOptions(url=f"http://{where}", model="m"))
            try:
                got, want = await generate(via_lean), await generate(via_httpx)
            finally:
                await via_lean.close()
                await via_httpx.close()
                server.close()
            assert shape(got) == shape(want)
            assert [e.text for e in got if isinstance(e, Delta)] == ["t0 ", "t1 ", "t2 ", "t3 "]
            assert isinstance(got[-1], Completed)
            assert got[-1].completion_tokens == 4

    run(go())


def test_the_request_it_sends(run: Run) -> None:
    async def go() -> None:
        seen: list[tuple[bytes, bytes]] = []

        async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            seen.append(await read_request(reader))
            writer.write(chunked_response(STREAM))
            await writer.drain()

        server, where = await serve(handler)
        # The URL's path is a prefix, as with the httpx client's base_url.
        backend = lean(f"{where}/engine/", headers={"Authorization": "Bearer k"})
        backend.use_tracer(TracerProvider().get_tracer("t"))  # a recorded CLIENT span: its traceparent goes along
        try:
            await generate(backend)
        finally:
            await backend.close()
            server.close()
        head, body = seen[0]
        lines = head.decode().split("\r\n")
        assert lines[0] == "POST /engine/v1/completions HTTP/1.1"
        fields = {k.lower(): v.strip() for k, _, v in (ln.partition(":") for ln in lines[1:] if ln)}
        assert fields["host"] == where
        assert fields["authorization"] == "Bearer k"
        assert fields["accept"] == "text/event-stream"
        assert fields["content-type"] == "application/json"
        assert fields["traceparent"].startswith("00-")
        assert int(fields["content-length"]) == len(body)
        sent = msgspec.json.decode(body)
        assert sent["model"] == "m"
        assert sent["stream"] is True
        assert sent["max_tokens"] == 4

    run(go())


def test_a_line_break_in_a_header_is_refused_before_anything_is_sent(run: Run) -> None:
    async def go() -> None:
        pool = LeanPool(HttpOptions(url="http://127.0.0.1:9"))
        for headers in ({"x-a": "v\r\nx-injected: 1"}, {"x-a": "v\n"}, {"x-a\r": "v"}, {"x-a": "é"}):
            with pytest.raises(ValueError, match=r"line break|ascii"):
                await pool.send("/", headers, b"")
        await pool.aclose()

    run(go())


def test_kept_connections_are_reused_and_a_stale_one_is_replaced(run: Run) -> None:
    async def go() -> None:
        connections = 0
        answered = 0

        async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            # Answers two requests per connection, then takes the third's bytes and closes without a word: the
            # race of a keep-alive timeout against a new request.
            nonlocal connections, answered
            connections += 1
            for _ in range(2):
                await read_request(reader)
                writer.write(chunked_response(STREAM))
                await writer.drain()
                answered += 1
            await read_request(reader)
            writer.close()

        server, where = await serve(handler)
        backend = lean(where)
        exporter = InMemorySpanExporter()
        provider = TracerProvider()
        provider.add_span_processor(SimpleSpanProcessor(exporter))
        backend.use_tracer(provider.get_tracer("t"))
        firsts: list[Delta] = []
        try:
            for i in range(5):
                events = await generate(backend, i)
                assert isinstance(events[-1], Completed), events[-1]
                deltas = [e for e in events if isinstance(e, Delta)]
                firsts.append(deltas[0])
                assert isinstance(events[0], Started)
                # The call's timing rides on the first delta only: head after the start, before the chunk.
                assert events[0].t_ns <= deltas[0].head_ns <= deltas[0].t_ns
                assert all(d.head_ns == 0 and d.connect_ns == -1 for d in deltas[1:])
        finally:
            await backend.close()
            server.close()
        spans = [dict(s.attributes or {}) for s in exporter.get_finished_spans()]
        retried = [a.get("lockgate.engine.connection_retried", False) for a in spans]
        assert retried == [False, False, True, False, True]
        # A new connection for the first request and for each retried one; the kept one otherwise.
        assert [a["lockgate.engine.connection_new"] for a in spans] == [True, False, True, False, True]
        assert [d.connect_ns > 0 for d in firsts] == [True, False, True, False, True]
        assert [d.connect_ns for d in firsts][1::2] == [0, 0]
        assert [a.get("lockgate.engine.connect_s", 0) > 0 for a in spans] == [True, False, True, False, True]
        assert answered == 5
        assert connections == 3  # 1-2 on the first, the 3rd retried on a second (which then took the 4th) ...
        assert backend._lean is not None
        assert backend._lean.retries == 2

    run(go())


def test_the_second_try_takes_a_new_connection_not_another_kept_one(run: Run) -> None:
    async def go() -> None:
        connections = 0

        async def one_answer_each(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            # Answers one request per connection; the next request's bytes are read and the connection closed
            # without a word (an engine restarted under its kept connections looks the same).
            nonlocal connections
            connections += 1
            await read_request(reader)
            await asyncio.sleep(0.05)  # the two first requests overlap: two kept connections
            writer.write(chunked_response(STREAM))
            await writer.drain()
            await read_request(reader)
            writer.close()

        server, where = await serve(one_answer_each)
        backend = lean(where)
        try:
            both = await asyncio.gather(generate(backend, 1), generate(backend, 2))
            assert all(isinstance(events[-1], Completed) for events in both)
            assert backend._lean is not None
            assert backend._lean.idle == 2
            events = await generate(backend, 3)
        finally:
            await backend.close()
            server.close()
        assert isinstance(events[-1], Completed), events[-1]
        assert connections == 3

    run(go())


def test_an_idle_connection_past_its_expiry_or_closed_by_the_engine_is_not_reused(run: Run) -> None:
    async def go() -> None:
        ports: list[int] = []

        def counting(inner: Handler) -> Handler:
            async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
                ports.append(writer.get_extra_info("peername")[1])
                await inner(reader, writer)
            return handler

        server, where = await serve(counting(streaming()))
        backend = lean(where, keepalive_expiry_s=0.05)
        try:
            await generate(backend)
            await generate(backend)  # at once: the same connection
            await asyncio.sleep(0.1)
            await generate(backend)  # past the expiry: a new one
        finally:
            await backend.close()
            server.close()
        assert len(ports) == 2

        async def close_after_answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            ports.append(writer.get_extra_info("peername")[1])
            await read_request(reader)
            writer.write(chunked_response(STREAM))
            await writer.drain()
            writer.close()

        ports.clear()
        server, where = await serve(close_after_answer)
        backend = lean(where)
        try:
            for i in range(3):
                await asyncio.sleep(0.05)  # the engine's close has arrived: the pool sees it and does not reuse
                assert isinstance((await generate(backend, i))[-1], Completed)
            assert backend._lean is not None
            assert backend._lean.retries == 0  # never sent on the closed connection to find out
        finally:
            await backend.close()
            server.close()
        assert len(ports) == 3

    run(go())


def test_failures_map_as_the_httpx_paths_do(run: Run) -> None:
    async def go() -> None:
        with socket.socket() as probe:  # a port nobody listens on
            probe.bind(("127.0.0.1", 0))
            refused = probe.getsockname()[1]
        backend = lean(f"127.0.0.1:{refused}")
        events = await generate(backend)
        await backend.close()
        assert isinstance(events[-1], Failed)
        assert (events[-1].status, events[-1].retryable, events[-1].type) == (503, True, "engine_unavailable")
        assert "connection refused" in events[-1].message

        async def error_400(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            await read_request(reader)
            body = b'{"error":{"message":"This model\'s maximum context length is 2048 tokens.","type":"Bad",' \
                   b'"param":null,"code":400}}'
            writer.write(b"HTTP/1.1 400 Bad Request\r\ncontent-type: application/json\r\ncontent-length: %d\r\n\r\n%s"
                         % (len(body), body))
            await writer.drain()

        async def cut_mid_stream(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            await read_request(reader)
            writer.write(CHUNKED_HEAD + b"".join(frame(p) for p in STREAM[:2]))
            await writer.drain()
            writer.close()

        async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            await read_request(reader)
            await asyncio.sleep(5)

        async def no_answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            await read_request(reader)
            writer.close()

        async def garbage(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            await read_request(reader)
            writer.write(b"SSH-2.0-OpenSSH\r\n\r\n")
            await writer.drain()

        expected = {
            error_400: (400, False, "invalid_request_error", "context_length_exceeded"),
            cut_mid_stream: (502, False, "engine_error", None),  # after tokens: never retried elsewhere
            silent: (503, True, "engine_unavailable", None),  # no head within ttft_timeout_s
            no_answer: (503, True, "engine_unavailable", None),
            garbage: (503, True, "engine_unavailable", None),
        }
        for handler, (status, retryable, kind, code) in expected.items():
            server, where = await serve(handler)
            backend = lean(where, ttft_timeout_s=0.3)
            try:
                events = await generate(backend)
            finally:
                await backend.close()
                server.close()
            last = events[-1]
            assert isinstance(last, Failed), (handler.__name__, events)
            assert (last.status, last.retryable, last.type) == (status, retryable, kind), (handler.__name__, last)
            if code:
                assert last.code == code
            if handler is cut_mid_stream:
                assert [e.text for e in events if isinstance(e, Delta)] == ["t0 ", "t1 "]
            if handler is silent:
                assert "timed out (ReadTimeout)" in last.message

    run(go())


def test_a_body_larger_than_the_socket_buffers_waits_for_the_engine_and_times_out_if_it_never_reads(
        run: Run) -> None:
    async def go() -> None:
        big = b"x" * (16 * 1024 * 1024)  # far past the kernel's socket buffers and the transport's high-water mark
        got: list[int] = []

        async def slow_reader(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            await asyncio.sleep(0.2)  # the client's transport fills and pauses meanwhile
            got.append(len((await read_request(reader))[1]))
            writer.write(chunked_response(STREAM))
            await writer.drain()

        async def never_reads(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            await asyncio.sleep(5)

        for handler in (slow_reader, never_reads):
            server, where = await serve(handler)
            pool = LeanPool(HttpOptions(url=f"http://{where}", write_timeout_s=0.3))
            try:
                if handler is slow_reader:
                    resp = await pool.send("/v1/completions", {}, big)
                    assert b"[DONE]" in await resp.aread()
                    await resp.aclose()
                    assert got == [len(big)]
                else:
                    with pytest.raises(httpx.WriteTimeout):
                        await pool.send("/v1/completions", {}, big)
            finally:
                await pool.aclose()
                server.close()

    run(go())


def test_max_connections_and_the_pool_timeout(run: Run) -> None:
    async def go() -> None:
        handler = streaming(STREAM, delay=0.05)
        server, where = await serve(handler)
        backend = lean(where, max_connections=1, pool_timeout_s=0.05)
        first, second = await asyncio.gather(generate(backend, 1), generate(backend, 2))
        assert isinstance(first[-1], Completed)
        assert isinstance(second[-1], Failed)
        assert second[-1].retryable
        assert "PoolTimeout" in second[-1].message
        await backend.close()

        backend = lean(where, max_connections=1, pool_timeout_s=5)  # long enough to wait its turn
        both = await asyncio.gather(generate(backend, 1), generate(backend, 2))
        await backend.close()
        server.close()
        assert all(isinstance(events[-1], Completed) for events in both)

    run(go())


def test_cancelling_mid_stream_closes_the_connection_and_frees_its_slot(run: Run) -> None:
    async def go() -> None:
        closed = asyncio.Event()
        connections = 0

        async def endless(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            await read_request(reader)
            writer.write(CHUNKED_HEAD)
            for i in range(10_000):
                writer.write(frame(token(i)))
                await writer.drain()
                await asyncio.sleep(0.01)

        async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            nonlocal connections
            connections += 1
            if connections > 1:  # later connections: ordinary streams
                await streaming()(reader, writer)
                return
            task = asyncio.ensure_future(endless(reader, writer))
            while await reader.read(65536):  # b"" once the client closed its end
                pass
            task.cancel()
            closed.set()

        server, where = await serve(handler)
        backend = lean(where, max_connections=1, pool_timeout_s=0.5)

        async def consume() -> None:
            async for event in backend.generate(request()):
                if isinstance(event, Delta):
                    await asyncio.sleep(3600)  # a consumer that stops listening: cancelled below

        task = asyncio.ensure_future(consume())
        await asyncio.sleep(0.2)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        await asyncio.wait_for(closed.wait(), 2)  # the engine saw the connection close: it aborts the request
        assert backend._lean is not None
        assert backend._lean.idle == 0
        # The one slot came back: the next request gets a connection well within the pool timeout.
        assert isinstance((await generate(backend, 2))[-1], Completed)
        assert connections == 2
        await backend.close()
        server.close()

    run(go())


def test_the_client_span_names_the_lean_client(run: Run) -> None:
    async def go() -> list[Any]:
        exporter = InMemorySpanExporter()
        provider = TracerProvider()
        provider.add_span_processor(SimpleSpanProcessor(exporter))
        server, where = await serve(streaming())
        backend = lean(where)
        backend.use_tracer(provider.get_tracer("t"))
        try:
            await generate(backend)
        finally:
            await backend.close()
            server.close()
        return list(exporter.get_finished_spans())

    spans = run(go())
    assert len(spans) == 1
    attrs = dict(spans[0].attributes or {})
    assert attrs["lockgate.engine.client"] == "lean"
    assert "lockgate.engine.connection_retried" not in attrs
    assert attrs["lockgate.engine.connection_kept"] is True
    assert attrs["http.response.status_code"] == 200


def test_https(run: Run, self_signed: tuple[Path, Path]) -> None:
    cert, key = self_signed

    async def go() -> None:
        server_ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        server_ctx.load_cert_chain(cert, key)
        server, where = await serve(streaming(), server_ctx)
        port = where.rsplit(":", 1)[1]
        options = HttpOptions(url=f"https://localhost:{port}", client="lean")
        pool = LeanPool(options, ssl_context=ssl.create_default_context(cafile=str(cert)))
        resp = await pool.send("/v1/completions", {}, b"{}")
        assert resp.status_code == 200
        assert b"[DONE]" in await resp.aread()
        await resp.aclose()
        assert pool.idle == 1
        await pool.aclose()
        untrusting = LeanPool(options)  # httpx's trust store does not know this certificate
        with pytest.raises(httpx.ConnectError, match="CERTIFICATE_VERIFY_FAILED"):
            await untrusting.send("/v1/completions", {}, b"{}")
        server.close()

    run(go())
