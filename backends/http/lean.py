"""A lean HTTP/1.1 client for the adapters' generation requests (``HttpOptions.client = "lean"``).

An engine call is one POST with a JSON body on a kept connection to one engine, and a streamed response read to
its end. httpx's path for that (its request model, httpcore's pool and connection state machines, h11's parser,
anyio's locks) was 43% of the adapter's time per request at c=1 (docs/performance.md, *An engine call's fixed
cost*). Here the request is written as one buffer, the response head is parsed once (backends/http/h1.py), and the
body's framing is undone as it arrives, on the same asyncio protocol as the httpx path's network backend.

What it keeps from the httpx path: one pool per backend with ``max_connections``, ``max_keepalive_connections``
and ``keepalive_expiry_s``; the connect, write and pool timeouts; TLS for ``https`` URLs (httpx's default trust
store); and httpx's exception classes, which the adapters already map. What it adds: the wait for the response
head is bounded by ``ttft_timeout_s`` (the httpx path has no read timeout there), and a request whose kept
connection turns out closed before any byte of its answer is sent once more on a new connection. Probes stay on
httpx (backends/http/client.py), with their own pool.
"""

from __future__ import annotations

import asyncio
import ssl
import time
from collections import deque
from collections.abc import AsyncIterator, Mapping
from urllib.parse import urlsplit

import httpx

from backends.http.h1 import HEAD_LIMIT, Body, Head, parse_head
from backends.http.network import Inbound, read, write
from backends.http.options import HttpOptions

ALL = 1 << 62  # a read's limit that takes everything buffered
ERROR_BODY_LIMIT = 1024 * 1024
"""An error response's body is read up to this much (engines' are a few hundred bytes)."""


class _Stale(Exception):
    """A kept connection was closed by the engine before it answered: safe to send on a new one."""


class _Conn:
    __slots__ = ("idle_since", "inbound", "transport")

    def __init__(self, transport: asyncio.Transport, inbound: Inbound) -> None:
        self.transport = transport
        self.inbound = inbound
        self.idle_since = 0.0

    def reusable(self) -> bool:
        return not self.inbound.readable_while_idle()

    async def recv(self) -> bytes:
        """All that has arrived (waiting for something if nothing has); b"" once the engine closed cleanly."""
        return await read(self.inbound, ALL, None, httpx.ReadTimeout, httpx.ReadError)

    async def send(self, data: bytes, limit: float) -> None:
        if self.transport.is_closing():
            raise _Stale
        await write(self.transport, self.inbound, data, limit, httpx.WriteTimeout, httpx.WriteError)

    def close(self) -> None:
        self.transport.close()


class LeanResponse:
    """The part of ``httpx.Response`` the stream loop uses: ``status_code``, ``aiter_bytes``, ``aread``,
    ``aclose``. Closing gives the connection back to the pool if its body was read to the end."""

    def __init__(self, pool: LeanPool, conn: _Conn, head: Head, rest: bytes, *, retried: bool = False,
                 connect_ns: int = 0) -> None:
        self.status_code = head.status
        self.retried = retried
        """Sent a second time, on a new connection: the kept one it went out on first was closed by the engine."""
        self.connect_ns = connect_ns
        """Time spent opening a new connection for this request (0: it went out on a kept one)."""
        self._pool = pool
        self._conn = conn
        self._head = head
        self._body = Body(head)
        self._rest = rest
        self._closed = False

    async def aiter_bytes(self) -> AsyncIterator[bytes]:
        body = self._body
        if self._rest:
            payload = body.feed(self._rest)
            self._rest = b""
            if payload:
                yield payload
        while not body.done:
            data = await self._conn.recv()
            if not data:
                body.eof()
                return
            payload = body.feed(data)
            if payload:
                yield payload

    async def aread(self) -> bytes:
        parts: list[bytes] = []
        size = 0
        try:
            async with asyncio.timeout(self._pool.options.idle_timeout_s):
                async for part in self.aiter_bytes():
                    parts.append(part)
                    size += len(part)
                    if size >= ERROR_BODY_LIMIT:
                        break  # the rest stays unread: aclose then closes the connection
        except TimeoutError:
            raise httpx.ReadTimeout(f"the response body did not end within {self._pool.options.idle_timeout_s:g} s"
                                    ) from None
        return b"".join(parts)[:ERROR_BODY_LIMIT]

    async def aclose(self) -> None:
        if not self._closed:
            self._closed = True
            body = self._body
            self._pool.release(self._conn, body.done and not body.extra and self._head.keep_alive)


class LeanPool:
    """Connections to one engine (``options.url``), kept for reuse, most recently used first."""

    def __init__(self, options: HttpOptions, *, ssl_context: ssl.SSLContext | None = None) -> None:
        self.options = options
        parts = urlsplit(options.url)
        self._https = parts.scheme == "https"
        self._host = parts.hostname or ""
        self._port = parts.port or (443 if self._https else 80)
        self._prefix = parts.path.rstrip("/")
        self._host_header = parts.netloc.rsplit("@", 1)[-1]
        self._ssl = ssl_context if self._https else None  # None for https: httpx's default context, made once
        self._slots = asyncio.Semaphore(options.max_connections)
        self._idle: deque[_Conn] = deque()
        self._closed = False
        self.retries = 0
        """Requests sent again because their kept connection turned out closed (see ``LeanResponse.retried``)."""

    async def send(self, path: str, headers: Mapping[str, str], body: bytes) -> LeanResponse:
        """POST ``body`` to ``path`` (under the URL's own path) and return once the response head is in."""
        request = _render(self._prefix + path, self._host_header, headers, body)
        await self._take_slot()
        try:
            connect_ns = 0
            for attempt in range(2):
                # The second try takes a new connection: the kept ones may all be closed (an engine restart).
                conn, kept = self._checkout() if attempt == 0 else (None, False)
                if conn is None:
                    t0 = time.perf_counter_ns()
                    conn = await self._connect()
                    connect_ns += time.perf_counter_ns() - t0
                try:
                    await conn.send(request, self.options.write_timeout_s)
                    head, rest = await self._read_head(conn)
                except _Stale:
                    conn.close()
                    if kept and attempt == 0:
                        self.retries += 1
                        continue
                    raise httpx.RemoteProtocolError("the engine closed the connection without answering") from None
                except BaseException:
                    conn.close()
                    raise
                return LeanResponse(self, conn, head, rest, retried=attempt > 0, connect_ns=connect_ns)
            raise AssertionError("unreachable")  # pragma: no cover
        except BaseException:
            self._slots.release()
            raise

    def release(self, conn: _Conn, reusable: bool) -> None:
        self._slots.release()
        if reusable and not self._closed and len(self._idle) < self.options.max_keepalive_connections \
                and conn.reusable():
            conn.idle_since = asyncio.get_running_loop().time()
            self._idle.append(conn)
        else:
            conn.close()

    async def aclose(self) -> None:
        self._closed = True
        while self._idle:
            self._idle.pop().close()

    @property
    def idle(self) -> int:
        return len(self._idle)

    async def _take_slot(self) -> None:
        if not self._slots.locked():
            await self._slots.acquire()  # a free slot: returns at once, no timer
            return
        try:
            async with asyncio.timeout(self.options.pool_timeout_s):
                await self._slots.acquire()
        except TimeoutError:
            raise httpx.PoolTimeout(f"all {self.options.max_connections} connections to the engine stayed busy "
                                    f"for {self.options.pool_timeout_s:g} s") from None

    def _checkout(self) -> tuple[_Conn | None, bool]:
        now = asyncio.get_running_loop().time()
        while self._idle:
            conn = self._idle.pop()
            if now - conn.idle_since < self.options.keepalive_expiry_s and conn.reusable():
                return conn, True
            conn.close()
        return None, False

    async def _connect(self) -> _Conn:
        loop = asyncio.get_running_loop()
        if self._https and self._ssl is None:
            self._ssl = httpx.create_ssl_context()  # httpx's default trust store, as the probes use
        where = f"{self._host}:{self._port}"
        limit = self.options.connect_timeout_s
        try:
            async with asyncio.timeout(limit):
                transport, inbound = await loop.create_connection(
                    Inbound, self._host, self._port, ssl=self._ssl,
                    server_hostname=self._host if self._https else None)
        except TimeoutError:
            raise httpx.ConnectTimeout(f"connecting to {where} timed out after {limit:g} s") from None
        except OSError as exc:  # refused, unreachable, DNS, TLS verification (ssl.SSLError is an OSError)
            raise httpx.ConnectError(f"{where}: {exc}") from exc
        return _Conn(transport, inbound)

    async def _read_head(self, conn: _Conn) -> tuple[Head, bytes]:
        limit = self.options.ttft_timeout_s
        buf = b""
        try:
            async with asyncio.timeout(limit):
                while True:
                    end = buf.find(b"\r\n\r\n")
                    if end >= 0:
                        head = parse_head(buf[:end])
                        buf = buf[end + 4:]
                        if head.informational:
                            continue
                        return head, buf
                    if len(buf) > HEAD_LIMIT:
                        raise httpx.RemoteProtocolError(f"the response head is over {HEAD_LIMIT} bytes")
                    try:
                        data = await conn.recv()
                    except httpx.ReadError:
                        if buf:
                            raise
                        raise _Stale from None
                    if not data:
                        if buf:
                            raise httpx.RemoteProtocolError("the engine closed the connection inside a response head")
                        raise _Stale
                    buf += data
        except TimeoutError:
            raise httpx.ReadTimeout(f"no response head from the engine within {limit:g} s") from None


def _render(target: str, host: str, headers: Mapping[str, str], body: bytes) -> bytes:
    lines = [f"POST {target} HTTP/1.1\r\nhost: {host}\r\n"]
    for name, value in headers.items():
        lines.append(f"{name}: {value}\r\n")
    lines.append(f"content-length: {len(body)}\r\n\r\n")
    head = "".join(lines)
    # A CR or LF inside a name or value would split the head (header injection): refuse, as httpx does.
    breaks = len(lines) + 2  # two in the first and last parts, one per header line
    if head.count("\n") != breaks or head.count("\r") != breaks:
        raise ValueError("an engine request header holds a line break")
    return head.encode("ascii") + body
