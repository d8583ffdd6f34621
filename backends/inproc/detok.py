"""Incremental detokenization that never splits a UTF-8 character across deltas.

Byte-level BPE tokens can end in the middle of a multi-byte character; decoding them alone yields U+FFFD.
Like vLLM, we decode a short window of recent tokens twice (with and without the new ones) and only release
text once it no longer ends in a replacement character.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

Decode = Callable[[Sequence[int]], str]


class IncrementalDetokenizer:
    def __init__(self, decode: Decode) -> None:
        self._decode = decode
        self._ids: list[int] = []
        self._prefix = 0  # start of the window whose text was already released
        self._read = 0  # tokens up to here are released

    def push(self, token: int) -> str:
        """Add one token id; return the newly complete text (possibly empty)."""
        self._ids.append(token)
        prefix_text = self._decode(self._ids[self._prefix:self._read])
        full_text = self._decode(self._ids[self._prefix:])
        if full_text.endswith("\ufffd") or len(full_text) <= len(prefix_text):
            return ""
        self._prefix = self._read
        self._read = len(self._ids)
        return full_text[len(prefix_text):]

    def flush(self) -> str:
        """Release held text at the end of a sequence (a truly invalid byte sequence stays as U+FFFD)."""
        prefix_text = self._decode(self._ids[self._prefix:self._read])
        full_text = self._decode(self._ids[self._prefix:])
        self._prefix = self._read = len(self._ids)
        return full_text[len(prefix_text):]
