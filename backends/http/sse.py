"""An incremental Server-Sent Events reader that is indifferent to how the bytes were chunked.

Engines differ in small ways: TensorRT-LLM writes ``data: {json} \\n\\n`` (a space before the newline), keep-alive
comment lines (``: ping``) appear between events, some send named ``event:`` lines, and a stream may stop without
``[DONE]`` or without a final blank line. The decoder follows the WHATWG parsing rules (CR, LF and CRLF line ends,
one optional space after the colon, multi-line data joined by ``\\n``) and additionally trims trailing whitespace
from each data line, which JSON payloads never need.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterable, AsyncIterator

import msgspec


class SSEEvent(msgspec.Struct, frozen=True):
    data: str
    event: str = "message"
    id: str | None = None
    t_ns: int = 0
    """Wall-clock ns when the network read that completed this event returned."""


class SSEDecoder:
    """Feed bytes in any chunking; get complete events out. ``close()`` flushes an unterminated last event."""

    def __init__(self) -> None:
        self._buf = bytearray()
        self._skip_lf = False  # a CR ended the last line; an LF right after it belongs to the same line end
        self._data: list[str] = []
        self._event = ""
        self._id: str | None = None

    def feed(self, chunk: bytes, t_ns: int = 0) -> list[SSEEvent]:
        out: list[SSEEvent] = []
        buf = self._buf
        buf += chunk
        n = len(buf)
        start = 1 if self._skip_lf and n and buf[0] == 0x0A else 0
        self._skip_lf = False
        # Line ends are found by bytearray.find (C), not byte by byte: an engine chunk is a few hundred bytes per
        # token, and this runs for every one. Engines send LF; CR and CRLF are rare, so they are looked for only
        # when the buffer holds a CR at all.
        has_cr = b"\r" in buf
        while True:
            lf = buf.find(b"\n", start)
            cr = buf.find(b"\r", start) if has_cr else -1
            if cr != -1 and (lf == -1 or cr < lf):
                self._line(bytes(buf[start:cr]), out, t_ns)
                if cr + 1 < n:
                    start = cr + 2 if buf[cr + 1] == 0x0A else cr + 1
                else:
                    self._skip_lf = True  # an LF in the next chunk belongs to this line end
                    start = cr + 1
            elif lf != -1:
                self._line(bytes(buf[start:lf]), out, t_ns)
                start = lf + 1
            else:
                break
        del buf[:start]
        return out

    def close(self, t_ns: int = 0) -> list[SSEEvent]:
        """End of stream: a pending line and event still count (engines may omit the final blank line)."""
        out: list[SSEEvent] = []
        if self._buf:
            self._line(bytes(self._buf), out, t_ns)
            self._buf.clear()
        self._dispatch(out, t_ns)
        return out

    def _line(self, raw: bytes, out: list[SSEEvent], t_ns: int) -> None:
        if not raw:
            self._dispatch(out, t_ns)
            return
        line = raw.decode("utf-8", errors="replace")
        if line.startswith(":"):
            return  # comment / keep-alive
        name, sep, value = line.partition(":")
        if sep and value.startswith(" "):
            value = value[1:]
        if name == "data":
            self._data.append(value.rstrip())
        elif name == "event":
            self._event = value.strip()
        elif name == "id" and "\0" not in value:
            self._id = value
        # "retry" and unknown fields are ignored, as the spec says.

    def _dispatch(self, out: list[SSEEvent], t_ns: int) -> None:
        if self._data:
            out.append(SSEEvent(data="\n".join(self._data), event=self._event or "message", id=self._id,
                                t_ns=t_ns))
        self._data = []
        self._event = ""


async def aiter_sse(chunks: AsyncIterable[bytes]) -> AsyncIterator[SSEEvent]:
    """Events from a byte stream, each stamped with the arrival time of the bytes that completed it."""
    decoder = SSEDecoder()
    async for chunk in chunks:
        for event in decoder.feed(chunk, time.time_ns()):
            yield event
    for event in decoder.close(time.time_ns()):
        yield event
