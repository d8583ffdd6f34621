"""The asyncio network backend under httpx (backends/http/network.py), against real sockets: what the engine
adapters rely on from a connection (order, flow control both ways, pooled-connection liveness, TLS, and every
failure mapped to the httpx error the adapters already handle), on asyncio's loop and on uvloop's."""

from __future__ import annotations

import asyncio
import socket
import ssl
import struct
import subprocess
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import httpx
import msgspec
import pytest

from backends.http import network
from backends.http.client import build_client, engine_transport, use_asyncio_network
from backends.http.network import AsyncioBackend, AsyncioStream
from backends.http.options import HttpOptions
from tests.support.raw_http import read_request, serve


def response(body: bytes, *, close: bool = False) -> bytes:
    return (b"HTTP/1.1 200 OK\r\ncontent-length: %d\r\n%s\r\n" % (len(body), b"connection: close\r\n" if close
                                                                  else b"")) + body


def client(**kwargs: Any) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=engine_transport(httpx.Limits()), **kwargs)


def test_the_adapters_client_runs_on_the_asyncio_backend() -> None:
    async def go() -> None:
        c = build_client(HttpOptions(url="http://127.0.0.1:1"))
        assert isinstance(c._transport._pool._network_backend, AsyncioBackend)  # type: ignore[attr-defined]
        await c.aclose()

    asyncio.run(go())


def test_network_anyio_keeps_httpx_default_backend_and_streams(run: Callable[[Awaitable[Any]], Any]) -> None:
    # The way back (HttpOptions.network = "anyio"): httpx's own backend, and a stream still arrives whole over it.
    async def go() -> None:
        async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            await read_request(reader)
            writer.write(response(b"data: 1\n\ndata: [DONE]\n\n"))
            await writer.drain()
            writer.close()

        server, port = await serve(answer)
        c = build_client(HttpOptions(url=f"http://127.0.0.1:{port}", network="anyio"))
        try:
            backend = c._transport._pool._network_backend  # type: ignore[attr-defined]
            assert not isinstance(backend, AsyncioBackend)
            async with c.stream("POST", "/v1/completions", content=b"{}") as r:
                assert [line async for line in r.aiter_lines() if line] == ["data: 1", "data: [DONE]"]
        finally:
            await c.aclose()
            server.close()
            await server.wait_closed()

    run(go())


def test_network_option_rejects_unknown_backends() -> None:
    with pytest.raises(msgspec.ValidationError, match="network"):
        msgspec.convert({"url": "http://127.0.0.1:1", "network": "trio"}, HttpOptions)


def test_a_large_body_arrives_whole_and_in_order_with_reading_paused_meanwhile(
        run: Callable[[Awaitable[Any]], Any]) -> None:
    body = bytes(range(256)) * (4 * network.HIGH_WATER // 256)  # 4x the buffer bound

    async def go() -> None:
        async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            writer.write(body)
            await writer.drain()
            writer.close()

        server, port = await serve(handler)
        stream = await AsyncioBackend().connect_tcp("127.0.0.1", port)
        assert isinstance(stream, AsyncioStream)
        for _ in range(100):  # let the server fill our buffer while nobody reads
            await asyncio.sleep(0.01)
            if stream._protocol.read_paused:
                break
        assert stream._protocol.read_paused
        assert stream._protocol.buffered <= network.HIGH_WATER + 256 * 1024  # bounded: reading stopped
        got = bytearray()
        while chunk := await stream.read(65536):
            assert len(chunk) <= 65536
            got += chunk
        assert bytes(got) == body
        assert not stream._protocol.read_paused
        await stream.aclose()
        server.close()

    run(go())


def test_a_request_body_larger_than_the_socket_buffers_waits_for_the_server(
        run: Callable[[Awaitable[Any]], Any]) -> None:
    payload = b"x" * (8 * 1024 * 1024)

    async def go() -> None:
        async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            await asyncio.sleep(0.3)  # a slow reader: the client's writes must wait for it, not buffer 8 MB
            _, got = await read_request(reader)
            writer.write(response(str(len(got)).encode() + b":" + str(got == payload).encode()))
            await writer.drain()

        server, port = await serve(handler)
        async with client() as c:
            resp = await c.post(f"http://127.0.0.1:{port}/", content=payload)
        assert resp.text == f"{len(payload)}:True"
        server.close()

    run(go())


@pytest.mark.parametrize("server_drops_idle", [False, True])
def test_a_kept_connection_is_reused_unless_the_server_closed_it(run: Callable[[Awaitable[Any]], Any],
                                                                 server_drops_idle: bool) -> None:
    async def go() -> None:
        connections = 0

        async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            nonlocal connections
            connections += 1
            while True:
                try:
                    await read_request(reader)
                except asyncio.IncompleteReadError:
                    return
                writer.write(response(b"ok"))  # keep-alive
                await writer.drain()
                if server_drops_idle:  # then the server drops it while idle
                    await asyncio.sleep(0.05)
                    writer.close()
                    return

        server, port = await serve(handler)
        async with client() as c:
            for _ in range(3):
                assert (await c.get(f"http://127.0.0.1:{port}/")).text == "ok"
                await asyncio.sleep(0.2)
        assert connections == (3 if server_drops_idle else 1)
        server.close()

    run(go())


def test_failures_are_the_httpx_errors_the_adapters_map(run: Callable[[Awaitable[Any]], Any]) -> None:
    async def go() -> None:
        async def stall(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            await read_request(reader)
            writer.write(b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n")
            await writer.drain()
            await asyncio.sleep(5)

        async def cut(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            await read_request(reader)
            writer.write(b"HTTP/1.1 200 OK\r\ncontent-length: 100\r\n\r\npartial")
            await writer.drain()
            writer.close()

        async def reset(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            await read_request(reader)
            writer.write(b"HTTP/1.1 200 OK\r\ncontent-length: 100\r\n\r\npartial")
            await writer.drain()
            sock = writer.get_extra_info("socket")
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))  # close = RST
            writer.transport.abort()

        servers = {name: await serve(h) for name, h in (("stall", stall), ("cut", cut), ("reset", reset))}
        async with client(timeout=httpx.Timeout(5, read=0.2)) as c:

            async def read_all(url: str) -> None:
                async with c.stream("GET", url) as resp:
                    async for _ in resp.aiter_bytes():
                        pass

            with pytest.raises(httpx.ReadTimeout):
                await read_all(f"http://127.0.0.1:{servers['stall'][1]}/")
            with pytest.raises(httpx.RemoteProtocolError):  # a clean close before the body's end
                await c.get(f"http://127.0.0.1:{servers['cut'][1]}/")
            with pytest.raises(httpx.ReadError):
                await c.get(f"http://127.0.0.1:{servers['reset'][1]}/")
            with socket.socket() as probe:  # a port nobody listens on
                probe.bind(("127.0.0.1", 0))
                refused = probe.getsockname()[1]
            with pytest.raises(httpx.ConnectError):
                await c.get(f"http://127.0.0.1:{refused}/")
        for server, _ in servers.values():
            server.close()

    run(go())


def test_a_cancelled_read_leaves_no_waiter_behind(run: Callable[[Awaitable[Any]], Any]) -> None:
    async def go() -> None:
        async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            await asyncio.sleep(0.2)
            writer.write(b"late")
            await writer.drain()
            await asyncio.sleep(1)

        server, port = await serve(handler)
        stream = await AsyncioBackend().connect_tcp("127.0.0.1", port)
        assert isinstance(stream, AsyncioStream)
        task = asyncio.ensure_future(stream.read(100))
        await asyncio.sleep(0.05)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert stream._protocol.reader is None
        assert await stream.read(100) == b"late"  # the data that came later is still there for the next read
        await stream.aclose()
        server.close()

    run(go())


def test_https_through_start_tls(run: Callable[[Awaitable[Any]], Any], tmp_path: Path) -> None:
    key, cert = tmp_path / "key.pem", tmp_path / "cert.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key), "-out",
                    str(cert), "-days", "1", "-subj", "/CN=localhost", "-addext", "subjectAltName=DNS:localhost"],
                   check=True, capture_output=True)

    async def go() -> None:
        server_ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        server_ctx.load_cert_chain(cert, key)

        async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            await read_request(reader)
            writer.write(response(b"secure"))
            await writer.drain()

        server, port = await serve(handler, server_ctx)
        trusting = ssl.create_default_context(cafile=str(cert))
        transport = use_asyncio_network(httpx.AsyncHTTPTransport(verify=trusting))
        async with httpx.AsyncClient(transport=transport) as c:
            resp = await c.get(f"https://localhost:{port}/")
            assert resp.text == "secure"
        async with client() as c:  # the system's CAs do not know this certificate
            with pytest.raises(httpx.ConnectError, match="CERTIFICATE_VERIFY_FAILED"):
                await c.get(f"https://localhost:{port}/")
        server.close()

    run(go())
