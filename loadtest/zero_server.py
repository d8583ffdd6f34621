"""A zero-latency OpenAI-compatible streaming target: answers every request at once with ``max_tokens``
one-token chunks. Whatever latency the bench measures against it is the client's own overhead."""

from __future__ import annotations

import asyncio
import json
import multiprocessing as mp
from multiprocessing.connection import Connection
from typing import Any

_CHUNK = 'data: {{"id":"z","object":"chat.completion.chunk","created":0,"model":"zero","choices":[{choice}]}}\n\n'


def stream_body(max_tokens: int) -> bytes:
    parts = [_CHUNK.format(choice='{"index":0,"delta":{"role":"assistant","content":""},"finish_reason":null}')]
    parts += [_CHUNK.format(choice='{"index":0,"delta":{"content":" tok"},"finish_reason":null}')] * max_tokens
    parts.append(_CHUNK.format(choice='{"index":0,"delta":{},"finish_reason":"length"}'))
    parts.append('data: {"id":"z","object":"chat.completion.chunk","created":0,"model":"zero","choices":[],'
                 f'"usage":{{"prompt_tokens":1,"completion_tokens":{max_tokens},"total_tokens":{max_tokens + 1}}}}}'
                 '\n\n')
    parts.append("data: [DONE]\n\n")
    return "".join(parts).encode()


async def _handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while True:
            head = await reader.readuntil(b"\r\n\r\n")
            length = 0
            for line in head.split(b"\r\n"):
                if line.lower().startswith(b"content-length:"):
                    length = int(line.split(b":", 1)[1])
            body: dict[str, Any] = json.loads(await reader.readexactly(length)) if length else {}
            payload = stream_body(int(body.get("max_tokens") or 16))
            writer.write(b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ncontent-length: "
                         + str(len(payload)).encode() + b"\r\n\r\n" + payload)
            await writer.drain()
    except (asyncio.IncompleteReadError, ConnectionError):
        pass
    finally:
        writer.close()


async def _serve(conn: Connection | None, port: int = 0) -> None:
    server = await asyncio.start_server(_handle, "127.0.0.1", port, backlog=1024)
    if conn is not None:
        conn.send(server.sockets[0].getsockname()[1])
    async with server:
        await server.serve_forever()


def _main(conn: Connection) -> None:
    asyncio.run(_serve(conn))


class ZeroLatencyServer:
    """Runs in its own process so it takes no time from the client's event loop."""

    def __init__(self) -> None:
        self._proc: mp.process.BaseProcess | None = None
        self.port = 0

    def __enter__(self) -> ZeroLatencyServer:
        ctx = mp.get_context("fork")
        parent, child = ctx.Pipe()
        self._proc = ctx.Process(target=_main, args=(child,), daemon=True)
        self._proc.start()
        if not parent.poll(10):
            raise RuntimeError("the zero-latency target did not start")
        self.port = parent.recv()
        return self

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def __exit__(self, *_: object) -> None:
        if self._proc is not None:
            self._proc.terminate()
            self._proc.join(5)


if __name__ == "__main__":
    # Standalone, to measure another load tester's own overhead: python -m loadtest.zero_server PORT
    import sys

    asyncio.run(_serve(None, int(sys.argv[1])))
