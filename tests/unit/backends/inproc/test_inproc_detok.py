"""Incremental detokenization never emits half a UTF-8 character."""

from __future__ import annotations

from collections.abc import Sequence

from backends.inproc.detok import IncrementalDetokenizer


def byte_decode(ids: Sequence[int]) -> str:
    """A byte-level 'tokenizer': each id is one byte, like byte-level BPE's worst case."""
    return bytes(ids).decode("utf-8", errors="replace")


def test_multibyte_characters_are_released_whole() -> None:
    text = "a café 東京 😀!"
    detok = IncrementalDetokenizer(byte_decode)
    pieces = [detok.push(b) for b in text.encode()]
    assert "".join(pieces) + detok.flush() == text
    assert all("\ufffd" not in p for p in pieces)
    # The 4-byte emoji arrives as one piece, after its last byte.
    assert "😀" in pieces


def test_flush_releases_an_incomplete_tail() -> None:
    detok = IncrementalDetokenizer(byte_decode)
    assert detok.push(ord("x")) == "x"
    assert detok.push(0xE6) == ""  # first byte of a 3-byte character
    assert detok.flush() == "\ufffd"
