"""Hostile and broken clients: slow headers, slow bodies, clients that stop reading, connection floods."""

from __future__ import annotations

import asyncio
import json
import socket
import time

import httpx
import pytest

from backends.sim.engine import SimBackend
from tests.support.configs import sim_config
from tests.support.live import LiveServer

CHAT = "/v1/chat/completions"


@pytest.mark.anyio
async def test_slow_header_clients_are_cut_off_while_normal_streams_complete() -> None:
    config = sim_config(backends={"sim": {"ttft_ms": 20, "tpot_ms": 10}},
                        server={"header_timeout_s": 2.0, "max_connections": 1000})
    with LiveServer(config) as server:
        host, port = "127.0.0.1", server.port
        # The server's header deadline runs from each connection's accept, so each one's clock starts there
        # (opening 200 connections one by one takes a while on a loaded machine).
        slow = []
        for _ in range(200):
            opened = time.monotonic()
            slow.append((*await asyncio.open_connection(host, port), opened))
        request = b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"

        async def dribble(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, t0: float) -> float:
            for byte in request:
                try:
                    writer.write(bytes([byte]))
                    await writer.drain()
                except ConnectionError:
                    break
                try:
                    if await asyncio.wait_for(reader.read(1), timeout=1.0) == b"":
                        break  # closed by the server
                except TimeoutError:
                    continue
                except ConnectionError:
                    break
            writer.close()
            return time.monotonic() - t0

        async def normal(client: httpx.AsyncClient, i: int) -> int:
            async with client.stream("POST", CHAT, json={
                    "model": "sim-small", "messages": [{"role": "user", "content": f"n{i}"}], "max_tokens": 20,
                    "stream": True, "ignore_eos": True}) as resp:
                lines = [line async for line in resp.aiter_lines() if line.startswith("data: ")]
            assert lines[-1] == "data: [DONE]"
            return sum('"content"' in line for line in lines)

        async with httpx.AsyncClient(base_url=server.url, timeout=30,
                                     limits=httpx.Limits(max_connections=60)) as client:
            cut, streamed = await asyncio.gather(
                asyncio.gather(*(dribble(r, w, t0) for r, w, t0 in slow)),
                asyncio.gather(*(normal(client, i) for i in range(50))))
    assert all(count == 21 for count in streamed)  # role chunk + 20 tokens, every one of the 50
    # Each slow client was closed near the 2 s deadline, long before its ~80 s request finished.
    assert max(cut) < 6
    assert min(cut) >= 1.5


def test_slow_body_gets_408() -> None:
    with LiveServer(sim_config(server={"body_timeout_s": 1.0})) as server:
        body = json.dumps({"model": "sim-small", "messages": [{"role": "user", "content": "x"}]}).encode()
        with socket.create_connection(("127.0.0.1", server.port)) as s:
            s.sendall(b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                      b"Content-Length: %d\r\n\r\n" % len(body) + body[:10])
            s.settimeout(5)
            head = s.recv(4096)
        assert head.startswith(b"HTTP/1.1 408")
        assert b"request_timeout" in head or b"408" in head


def test_client_that_reads_nothing_of_a_long_stream_is_dropped_and_its_job_cancelled() -> None:
    config = sim_config(backends={"sim": {"ttft_ms": 1, "tpot_ms": 0, "max_model_len": 20_000}},
                        server={"write_timeout_s": 1.0, "max_buffered_events": 64}, max_output_tokens=10_000,
                        max_context=20_000)
    with LiveServer(config) as server:
        sim = server.runtime.backends["sim"]
        assert isinstance(sim, SimBackend)
        # 8 choices of 10,000 tokens: about 14 MB of SSE, more than the 4 MB a loopback socket may buffer
        # (net.ipv4.tcp_wmem), so the server's writes must block once the client stops reading.
        body = json.dumps({"model": "sim-small", "messages": [{"role": "user", "content": "x"}], "n": 8,
                           "max_tokens": 10_000, "stream": True, "ignore_eos": True}).encode()
        # A tiny receive window (set before connecting, or TCP ignores it) so the server's writes block
        # soon instead of the whole stream fitting in kernel buffers; the client then reads nothing.
        s = socket.socket()
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        s.connect(("127.0.0.1", server.port))
        s.sendall(b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                  b"Content-Length: %d\r\n\r\n" % len(body) + body)
        try:
            assert server.wait_for(lambda: sim.cancelled_requests == 1, timeout=15)
            assert server.wait_for(lambda: server.runtime.dispatcher.running("sim") == 0, timeout=2)
            assert sim.completed_requests == 0
        finally:
            s.close()
        # The gateway is fine afterwards.
        ok = httpx.post(server.url + CHAT, json={"model": "sim-small", "messages": [{"role": "user", "content": "y"}],
                                                 "max_tokens": 3})
        assert ok.status_code == 200


def test_connection_limit_answers_503_at_once() -> None:
    config = sim_config(backends={"sim": {"ttft_ms": 3000}}, server={"max_connections": 3})
    with LiveServer(config) as server:
        held = [socket.create_connection(("127.0.0.1", server.port)) for _ in range(3)]
        try:
            body = b'{"model":"sim-small","messages":[{"role":"user","content":"x"}]}'
            for s in held:
                s.sendall(b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                          b"Content-Length: %d\r\n\r\n%s" % (len(body), body))
            time.sleep(0.3)
            t0 = time.monotonic()
            resp = httpx.get(server.url + "/healthz", timeout=5)
            assert resp.status_code == 503
            assert time.monotonic() - t0 < 1
            assert resp.json()["error"]["code"] == "too_many_connections"
            assert resp.headers["retry-after"] == "1"
        finally:
            for s in held:
                s.close()
