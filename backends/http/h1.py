"""HTTP/1.1 response framing for the lean engine client (backends/http/lean.py): the response head, and the
body's three framings (chunked, ``content-length``, until the connection closes).

Strict where a lax reading could mix two responses on one kept connection (a bad chunk size, a doubled
``content-length`` that disagrees, bytes after the body's end): those raise ``httpx.RemoteProtocolError``, which
the adapters map like any transport failure, and the connection is not reused.
"""

from __future__ import annotations

import httpx

HEAD_LIMIT = 64 * 1024
"""Largest response head accepted; an engine's is a few hundred bytes."""
_SIZE_LINE_LIMIT = 1024
_HEX = frozenset(b"0123456789abcdefABCDEF")


class Head:
    """A parsed response head: its status, how its body is framed, and whether the connection may be kept."""

    __slots__ = ("chunked", "keep_alive", "length", "status")

    def __init__(self, status: int, *, chunked: bool, length: int | None, keep_alive: bool) -> None:
        self.status = status
        self.chunked = chunked
        self.length = length
        """Body length for ``content-length`` framing (0 where the status has no body); None otherwise."""
        self.keep_alive = keep_alive

    @property
    def informational(self) -> bool:
        """A 1xx head (``100 Continue``, ``103 Early Hints``): the real one follows on the same connection."""
        return 100 <= self.status < 200


def parse_head(raw: bytes, *, head_request: bool = False) -> Head:
    """``raw``: the head without its closing blank line."""
    lines = raw.split(b"\r\n")
    version, _, rest = lines[0].partition(b" ")
    code = rest[:3]
    if not version.startswith(b"HTTP/1.") or len(code) != 3 or not code.isdigit():
        raise httpx.RemoteProtocolError(f"not an HTTP/1.1 status line: {lines[0][:100]!r}")
    status = int(code)
    keep_alive = version != b"HTTP/1.0"
    chunked = False
    length: int | None = None
    for line in lines[1:]:
        name, sep, value = line.partition(b":")
        if not sep or not name or name != name.strip():
            raise httpx.RemoteProtocolError(f"malformed header line: {line[:100]!r}")
        key = name.lower()
        value = value.strip()
        if key == b"transfer-encoding":
            # The last coding decides the framing (RFC 9112 6.3); engines only ever send "chunked".
            chunked = value.lower().rsplit(b",", 1)[-1].strip() == b"chunked"
        elif key == b"content-length":
            if not value.isdigit() or (length is not None and int(value) != length):
                raise httpx.RemoteProtocolError(f"bad content-length: {value[:40]!r}")
            length = int(value)
        elif key == b"connection":
            tokens = {t.strip() for t in value.lower().split(b",")}
            keep_alive = b"keep-alive" in tokens if version == b"HTTP/1.0" else b"close" not in tokens
    if head_request or status in (204, 304) or 100 <= status < 200:
        return Head(status, chunked=False, length=0, keep_alive=keep_alive)
    if chunked:
        # Chunked wins over a content-length (RFC 9112 6.3), and a response that sent both is not reused.
        keep_alive = keep_alive and length is None
        length = None
    return Head(status, chunked=chunked, length=length, keep_alive=keep_alive and (chunked or length is not None))


class Body:
    """Decodes one response body from the bytes that follow its head, in any split. ``feed`` returns the
    payload bytes found; ``done`` turns True at the body's end, and ``extra`` is what came after it (nothing,
    on a connection that is to be reused)."""

    __slots__ = ("_buf", "_left", "_mode", "done", "extra")

    def __init__(self, head: Head) -> None:
        self._buf = b""
        self.extra = b""
        if head.chunked:
            self._mode = _SIZE
            self._left = 0
        elif head.length is not None:
            self._mode = _LENGTH
            self._left = head.length
        else:
            self._mode = _CLOSE
            self._left = 0
        self.done = self._mode == _LENGTH and self._left == 0

    def feed(self, data: bytes) -> bytes:
        if self.done:
            self.extra += data
            return b""
        if self._mode == _CLOSE:
            return data
        if self._mode == _LENGTH:
            if len(data) < self._left:
                self._left -= len(data)
                return data
            payload, self.extra = data[:self._left], data[self._left:]
            self._left = 0
            self.done = True
            return payload
        return self._chunked(data)

    def eof(self) -> None:
        """The connection closed: the end of a body framed that way, a cut one otherwise."""
        if self._mode == _CLOSE:
            self.done = True
        elif not self.done:
            raise httpx.RemoteProtocolError("the engine closed the connection before the response's end")

    def _chunked(self, data: bytes) -> bytes:
        buf = self._buf + data if self._buf else data
        n = len(buf)
        pos = 0
        out: list[bytes] = []
        while pos < n:
            mode = self._mode
            if mode == _DATA:
                take = min(self._left, n - pos)
                out.append(buf[pos:pos + take])
                pos += take
                self._left -= take
                if self._left == 0:
                    self._mode = _DATA_END
            elif mode == _DATA_END:
                if n - pos < 2:
                    break
                if buf[pos:pos + 2] != b"\r\n":
                    raise httpx.RemoteProtocolError("a chunk's data does not end where its size says")
                pos += 2
                self._mode = _SIZE
            else:  # _SIZE or _TRAILER: a line
                end = buf.find(b"\r\n", pos)
                if end < 0:
                    if n - pos > _SIZE_LINE_LIMIT:
                        raise httpx.RemoteProtocolError("a chunk size or trailer line is too long")
                    break
                line = buf[pos:end]
                pos = end + 2
                if mode == _TRAILER:
                    if not line:  # the blank line after the last chunk (and any trailer fields): the end
                        self.done = True
                        self.extra = buf[pos:]
                        pos = n
                    continue
                size = line.split(b";", 1)[0].strip()
                if not size or not _HEX.issuperset(size):
                    raise httpx.RemoteProtocolError(f"bad chunk size line: {line[:40]!r}")
                self._left = int(size, 16)
                self._mode = _DATA if self._left else _TRAILER
        self._buf = buf[pos:] if pos < n else b""
        return out[0] if len(out) == 1 else b"".join(out)


_SIZE, _DATA, _DATA_END, _TRAILER, _LENGTH, _CLOSE = range(6)
