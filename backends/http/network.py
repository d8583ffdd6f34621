"""An httpcore network backend on plain asyncio transports, for the engine connections' streams.

httpcore's default on asyncio is anyio's socket stream. Each read there costs a cancel scope (``fail_after``,
even without a timeout), and a wait for data pauses and resumes the transport's reading around it (two
``epoll_ctl`` calls per wait). An engine stream is one small read per token, so on a busy worker that path was
about a quarter of the CPU per token (docs/performance.md, *HTTP engine adapters*). Here a protocol buffers what
arrives and a read takes it, or waits on one future; a timer exists only when a timeout is asked for (httpx asks
none for reads: the adapter's own deadlines bound a stream's silences).

Errors are httpcore's (ConnectError, ReadError, ...), which httpx maps to its own, as with the default backend.
"""

# ruff: noqa: ASYNC109  (the ``timeout`` parameters are httpcore's interface, which passes them by name)

from __future__ import annotations

import asyncio
import socket
import ssl
from collections import deque
from collections.abc import Awaitable, Iterable
from typing import Any, cast

import httpcore
from httpcore import AsyncNetworkBackend, AsyncNetworkStream

SocketOption = tuple[int, int, int] | tuple[int, int, bytes | bytearray] | tuple[int, int, None, int]

# Past this much unread data the transport stops reading (TCP's window then holds the engine back).
HIGH_WATER = 256 * 1024


class Inbound(asyncio.Protocol):
    """What arrived on one connection, and who waits for more (also the lean client's, backends/http/lean.py)."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.chunks: deque[bytes] = deque()
        self.buffered = 0
        self.eof = False
        self.error: BaseException | None = None
        self.reader: asyncio.Future[None] | None = None
        self.writable: asyncio.Future[None] | None = None
        self.write_paused = False
        self.read_paused = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports implement asyncio.Transport's methods without subclassing it.
        self.transport = cast(asyncio.Transport, transport)

    def data_received(self, data: bytes) -> None:
        self.chunks.append(data)
        self.buffered += len(data)
        if self.buffered > HIGH_WATER and not self.read_paused and self.transport is not None:
            self.transport.pause_reading()
            self.read_paused = True
        self._wake_reader()

    def eof_received(self) -> bool:
        self.eof = True
        self._wake_reader()
        return False  # the transport closes itself: HTTP/1.1 has no use for a half-open connection

    def connection_lost(self, exc: Exception | None) -> None:
        self.eof = True
        self.error = exc
        self._wake_reader()
        self._wake_writer()

    def pause_writing(self) -> None:
        self.write_paused = True

    def resume_writing(self) -> None:
        self.write_paused = False
        self._wake_writer()

    def readable_while_idle(self) -> bool:
        """Asked of an idle kept connection: data nobody asked for, or an end, means it is closed or out of step
        with its peer; either way it is not to be reused."""
        return bool(self.chunks) or self.eof or (self.transport is not None and self.transport.is_closing())

    def take(self, max_bytes: int) -> bytes:
        first = self.chunks.popleft()
        if len(first) > max_bytes:
            self.chunks.appendleft(first[max_bytes:])
            first = first[:max_bytes]
        elif self.chunks and len(first) + len(self.chunks[0]) <= max_bytes:
            parts = [first]
            size = len(first)
            while self.chunks and size + len(self.chunks[0]) <= max_bytes:
                part = self.chunks.popleft()
                parts.append(part)
                size += len(part)
            first = b"".join(parts)
        self.buffered -= len(first)
        if self.read_paused and self.buffered <= HIGH_WATER // 2 and self.transport is not None:
            self.transport.resume_reading()
            self.read_paused = False
        return first

    def _wake_reader(self) -> None:
        if self.reader is not None and not self.reader.done():
            self.reader.set_result(None)

    def _wake_writer(self) -> None:
        if self.writable is not None and not self.writable.done():
            self.writable.set_result(None)


async def await_io(future: asyncio.Future[None], limit: float | None, on_timeout: type[Exception]) -> None:
    if limit is None:
        await future
        return
    try:
        async with asyncio.timeout(limit):
            await future
    except TimeoutError:
        raise on_timeout(f"timed out after {limit:g} s") from None


async def read(p: Inbound, max_bytes: int, limit: float | None, on_timeout: type[Exception],
               on_error: type[Exception]) -> bytes:
    """Up to ``max_bytes`` of what has arrived, waiting (up to ``limit``) if nothing has; b"" once the peer closed
    cleanly. The error classes are the caller's: httpcore's here, httpx's in lean.py."""
    if not p.chunks and not p.eof:
        p.reader = asyncio.get_running_loop().create_future()
        try:
            await await_io(p.reader, limit, on_timeout)
        finally:
            p.reader = None
    if p.chunks:
        return p.take(max_bytes)
    if p.error is not None:
        raise on_error(str(p.error) or type(p.error).__name__)
    return b""


async def write(transport: asyncio.Transport, p: Inbound, buffer: bytes, limit: float | None,
                on_timeout: type[Exception], on_error: type[Exception]) -> None:
    """Hand ``buffer`` to the transport; if that fills its buffer past the high-water mark, wait (up to ``limit``)
    until the peer has read enough. The error classes are the caller's: httpcore's here, httpx's in lean.py."""
    transport.write(buffer)
    if p.write_paused:
        p.writable = asyncio.get_running_loop().create_future()
        try:
            await await_io(p.writable, limit, on_timeout)
        finally:
            p.writable = None
        if p.error is not None or transport.is_closing():
            raise on_error(str(p.error) if p.error else "the connection closed while writing")


class AsyncioStream(AsyncNetworkStream):
    def __init__(self, transport: asyncio.Transport, protocol: Inbound) -> None:
        self._transport = transport
        self._protocol = protocol

    async def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        return await read(self._protocol, max_bytes, timeout, httpcore.ReadTimeout, httpcore.ReadError)

    async def write(self, buffer: bytes, timeout: float | None = None) -> None:
        if not buffer:
            return
        p = self._protocol
        if self._transport.is_closing():
            raise httpcore.WriteError(str(p.error) if p.error else "the connection is closed")
        await write(self._transport, p, buffer, timeout, httpcore.WriteTimeout, httpcore.WriteError)

    async def aclose(self) -> None:
        self._transport.close()

    async def start_tls(self, ssl_context: ssl.SSLContext, server_hostname: str | None = None,
                        timeout: float | None = None) -> AsyncNetworkStream:
        loop = asyncio.get_running_loop()
        try:
            async with asyncio.timeout(timeout):
                tls = await loop.start_tls(self._transport, self._protocol, ssl_context,
                                           server_hostname=server_hostname)
        except TimeoutError:
            self._transport.close()
            raise httpcore.ConnectTimeout(f"TLS handshake timed out after {timeout:g} s") from None
        except (OSError, ssl.SSLError) as exc:
            self._transport.close()
            raise httpcore.ConnectError(str(exc)) from exc
        if tls is None:  # the connection closed during the handshake
            raise httpcore.ConnectError("the connection closed during the TLS handshake")
        self._protocol.transport = tls
        return AsyncioStream(tls, self._protocol)

    def get_extra_info(self, info: str) -> Any:
        if info == "is_readable":
            # httpcore asks this of an idle pooled connection. The protocol already knows, without a syscall.
            return self._protocol.readable_while_idle()
        if info == "ssl_object":
            return self._transport.get_extra_info("ssl_object")
        if info == "client_addr":
            return self._transport.get_extra_info("sockname")
        if info == "server_addr":
            return self._transport.get_extra_info("peername")
        if info == "socket":
            return self._transport.get_extra_info("socket")
        return None


class AsyncioBackend(AsyncNetworkBackend):
    async def connect_tcp(self, host: str, port: int, timeout: float | None = None,
                          local_address: str | None = None,
                          socket_options: Iterable[SocketOption] | None = None) -> AsyncNetworkStream:
        opening = asyncio.get_running_loop().create_connection(
            Inbound, host, port, local_addr=(local_address, 0) if local_address else None)
        return await _connect(opening, f"{host}:{port}", timeout, socket_options)

    async def connect_unix_socket(self, path: str, timeout: float | None = None,
                                  socket_options: Iterable[SocketOption] | None = None) -> AsyncNetworkStream:
        opening = asyncio.get_running_loop().create_unix_connection(Inbound, path)
        return await _connect(opening, path, timeout, socket_options)

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(seconds)


async def _connect(opening: Awaitable[tuple[asyncio.BaseTransport, Inbound]], where: str, limit: float | None,
                   options: Iterable[SocketOption] | None) -> AsyncioStream:
    try:
        async with asyncio.timeout(limit):
            transport, protocol = await opening
    except TimeoutError:
        raise httpcore.ConnectTimeout(f"connecting to {where} timed out after {limit:g} s") from None
    except OSError as exc:
        raise httpcore.ConnectError(str(exc)) from exc
    _apply(transport, options)
    return AsyncioStream(cast(asyncio.Transport, transport), protocol)


def _apply(transport: asyncio.BaseTransport, options: Iterable[SocketOption] | None) -> None:
    sock: socket.socket | None = transport.get_extra_info("socket")
    if sock is None:
        return
    for option in options or ():
        sock.setsockopt(*option)
