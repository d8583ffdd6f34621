"""An incremental Server-Sent Events parser: bytes as they arrive -> the ``data`` payload of each event."""

from __future__ import annotations


class SSEParser:
    def __init__(self) -> None:
        self._buffer = b""
        self._data: list[bytes] = []

    def feed(self, chunk: bytes) -> list[bytes]:
        """Return the data of every event completed by ``chunk`` (multi-line data joined with newlines)."""
        self._buffer += chunk
        events: list[bytes] = []
        while True:
            cut = self._buffer.find(b"\n")
            if cut < 0:
                return events
            line = self._buffer[:cut].rstrip(b"\r")
            self._buffer = self._buffer[cut + 1:]
            if not line:
                if self._data:
                    events.append(b"\n".join(self._data))
                    self._data = []
            elif line.startswith(b"data:"):
                value = line[5:]
                self._data.append(value[1:] if value.startswith(b" ") else value)
            # Comments (":"), event:, id: and retry: lines carry nothing lockgate measures.

    def close(self) -> list[bytes]:
        """An event cut off by the end of the stream still counts when its data lines were complete."""
        events = self.feed(b"\n\n") if self._buffer or self._data else []
        self._buffer = b""
        return events
