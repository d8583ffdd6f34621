"""Targets for the bench's end-to-end tests: the gateway on the simulator, the simulator behind a bare HTTP
server (no gateway in the path), and scripted servers for stream edge cases. Each runs in its own process so
it takes no time from the client under test."""

from __future__ import annotations

import asyncio
import json
import multiprocessing as mp
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

import httpx
import msgspec

from backends.events import Completed, Delta, Failed
from backends.request import ChatMessage, GenerationRequest
from backends.sim import SimBackend, SimOptions
from loadtest import BenchResult, BenchSpec, run_bench
from tests.support.configs import sim_config_text
from tests.support.procs import free_port

REPO = Path(__file__).resolve().parents[2]
Write = Callable[[bytes], Awaitable[None]]
Handler = Callable[[str, dict[str, Any], Write], Awaitable[bool]]
"""(path, body, write one SSE chunk) -> whether to end the response cleanly (False: drop the connection)."""


def chunk(choices: list[dict[str, Any]], usage: dict[str, int] | None = None) -> bytes:
    obj: dict[str, Any] = {"id": "x", "object": "chat.completion.chunk", "created": 0, "model": "m",
                           "choices": choices}
    if usage is not None:
        obj["usage"] = usage
    return b"data: " + json.dumps(obj).encode() + b"\n\n"


def content(text: str) -> bytes:
    return chunk([{"index": 0, "delta": {"content": text}, "finish_reason": None}])


ROLE = chunk([{"index": 0, "delta": {"role": "assistant", "content": ""}, "finish_reason": None}])
DONE = b"data: [DONE]\n\n"


def finish(reason: str = "length") -> bytes:
    return chunk([{"index": 0, "delta": {}, "finish_reason": reason}])


def usage(prompt: int, completion: int) -> bytes:
    return chunk([], {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion})


async def _serve_connection(handler: Handler, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while True:
            head = await reader.readuntil(b"\r\n\r\n")
            lines = head.decode().split("\r\n")
            path = lines[0].split(" ")[1]
            length = next((int(v) for k, _, v in (ln.partition(":") for ln in lines[1:])
                           if k.lower() == "content-length"), 0)
            body = json.loads(await reader.readexactly(length)) if length else {}
            writer.write(b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ntransfer-encoding: chunked\r\n"
                         b"x-lockgate-trace-id: 0123456789abcdef0123456789abcdef\r\n\r\n")
            await writer.drain()

            async def write(data: bytes) -> None:
                writer.write(f"{len(data):x}\r\n".encode() + data + b"\r\n")
                await writer.drain()

            if not await handler(path, body, write):
                return
            writer.write(b"0\r\n\r\n")
            await writer.drain()
    except (asyncio.IncompleteReadError, ConnectionError):
        pass
    finally:
        writer.close()


def _run(handler: Handler, conn: Connection) -> None:
    async def main() -> None:
        server = await asyncio.start_server(lambda r, w: _serve_connection(handler, r, w), "127.0.0.1", 0)
        conn.send(server.sockets[0].getsockname()[1])
        await server.serve_forever()

    # The default loop: its timers are finer than uvloop's millisecond ones, so the simulator's sleeps end on time.
    asyncio.run(main())


@contextmanager
def serve(handler: Handler) -> Iterator[str]:
    """Run ``handler`` behind a bare HTTP/1.1 server in a forked process; yields its base URL (…/v1)."""
    ctx = mp.get_context("fork")
    parent, child = ctx.Pipe()
    proc = ctx.Process(target=_run, args=(handler, child), daemon=True)
    proc.start()
    try:
        assert parent.poll(10), "test server did not start"
        yield f"http://127.0.0.1:{parent.recv()}/v1"
    finally:
        proc.terminate()
        proc.join(5)


def sim_handler(options: SimOptions) -> Handler:
    """The simulator with no gateway in the path: a role-only chunk at once, then its deltas as they come."""
    state: dict[str, SimBackend] = {}

    async def handle(path: str, body: dict[str, Any], write: Write) -> bool:
        if "sim" not in state:
            state["sim"] = SimBackend("sim", options)
            await state["sim"].start()
        request = GenerationRequest(
            request_id="r", model=body["model"], operation="chat", max_tokens=int(body.get("max_tokens", 16)),
            messages=tuple(ChatMessage(m["role"], m["content"]) for m in body["messages"]),
            extra={"ignore_eos": bool(body.get("ignore_eos"))})
        await write(ROLE)
        async for event in state["sim"].generate(request):
            if isinstance(event, Delta):
                await write(content(event.text))
            elif isinstance(event, Completed):
                await write(finish(event.finish_reasons[0]) + usage(event.prompt_tokens, event.completion_tokens)
                            + DONE)
            elif isinstance(event, Failed):
                await write(b"data: " + json.dumps({"error": {"message": event.message, "type": event.type}})
                            .encode() + b"\n\n" + DONE)
        return True

    return handle


def gateway_config(models: dict[str, dict[str, float]]) -> str:
    """One model per entry, each on its own simulator backend with these options."""
    return sim_config_text(backends=dict(models), models={name: [(name, 1.0)] for name in models},
                           server={"host": "127.0.0.1"})


@contextmanager
def gateway(models: dict[str, dict[str, float]]) -> Iterator[str]:
    """``lockgate serve`` on the simulator in a subprocess; yields its base URL (…/v1)."""
    port = free_port()
    with tempfile.TemporaryDirectory() as tmp:
        cfg = Path(tmp) / "sim.toml"
        cfg.write_text(gateway_config(models))
        env = {**os.environ, "PYTHONPATH": str(REPO)}
        proc = subprocess.Popen([sys.executable, "-m", "gateway.cli", "serve", "--config", str(cfg), "--port",
                                 str(port), "--log-level", "warning"], cwd=REPO, env=env)
        try:
            deadline = time.monotonic() + 30
            while True:
                try:
                    if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code == 200:
                        break
                except httpx.HTTPError:
                    pass
                assert proc.poll() is None, "lockgate serve exited"
                assert time.monotonic() < deadline, "lockgate serve did not start"
                time.sleep(0.1)
            yield f"http://127.0.0.1:{port}/v1"
        finally:
            proc.terminate()
            proc.wait(10)


def _run_encoded(spec_json: bytes) -> bytes:
    return msgspec.json.encode(run_bench(msgspec.json.decode(spec_json, type=BenchSpec)))


def run_isolated(spec: BenchSpec) -> BenchResult:
    """``run_bench`` in a fresh process. The test process may host other suites' threads (in-process gateways,
    pollers) that take the GIL from the client and blur sub-millisecond timings; a spawned process has none."""
    with mp.get_context("spawn").Pool(1) as pool:
        data: bytes = pool.apply(_run_encoded, (msgspec.json.encode(spec),))
    return msgspec.json.decode(data, type=BenchResult)
