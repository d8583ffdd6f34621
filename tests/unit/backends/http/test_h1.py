"""HTTP/1.1 response framing of the lean engine client (backends/http/h1.py): heads, and bodies in any split."""

from __future__ import annotations

import random

import httpx
import pytest

from backends.http.h1 import Body, Head, parse_head

SSE = [b"data: {\"n\": %d}\n\n" % i for i in range(5)] + [b"data: [DONE]\n\n"]


def chunked(parts: list[bytes], *, trailer: bytes = b"", ext: bool = False) -> bytes:
    out = b"".join(b"%x%s\r\n%s\r\n" % (len(p), b";name=v" if ext else b"", p) for p in parts)
    return out + b"0\r\n" + trailer + b"\r\n"


def decode(head: Head, data: bytes, cuts: list[int]) -> tuple[bytes, Body]:
    body = Body(head)
    got = []
    last = 0
    for cut in [*cuts, len(data)]:
        got.append(body.feed(data[last:cut]))
        last = cut
    return b"".join(got), body


def test_a_chunked_body_decodes_the_same_in_every_split() -> None:
    head = parse_head(b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ntransfer-encoding: chunked")
    assert head.chunked
    assert head.keep_alive
    assert head.length is None
    data = chunked(SSE, trailer=b"x-trailer: 1\r\n", ext=True)
    rng = random.Random(7)
    splits = [[], *[[i] for i in range(1, len(data))],
              *[sorted(rng.sample(range(1, len(data)), 12)) for _ in range(200)],
              list(range(1, len(data)))]  # one byte at a time
    for cuts in splits:
        payload, body = decode(head, data, cuts)
        assert payload == b"".join(SSE), cuts
        assert body.done, cuts
        assert body.extra == b"", cuts


def test_a_chunked_body_is_not_done_before_its_last_blank_line() -> None:
    body = Body(parse_head(b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked"))
    assert body.feed(b"5\r\nhello\r\n0\r\n") == b"hello"
    assert not body.done
    assert body.feed(b"\r\n") == b""
    assert body.done


def test_bytes_after_the_body_are_kept_apart_as_extra() -> None:
    body = Body(parse_head(b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked"))
    assert body.feed(b"2\r\nok\r\n0\r\n\r\nHTTP/1.1 200") == b"ok"
    assert body.done
    assert body.extra == b"HTTP/1.1 200"
    body = Body(parse_head(b"HTTP/1.1 400 Bad Request\r\ncontent-length: 4"))
    assert body.feed(b"oops!") == b"oops"
    assert body.done
    assert body.extra == b"!"


@pytest.mark.parametrize("bad", [b"zz\r\n", b"\r\n", b"-1\r\n", b"0x5\r\nhello\r\n", b"5\r\nhelloXX", b"1" * 2000])
def test_a_bad_chunk_frame_is_a_protocol_error(bad: bytes) -> None:
    body = Body(parse_head(b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked"))
    with pytest.raises(httpx.RemoteProtocolError):
        body.feed(bad)


def test_content_length_and_until_close_framings() -> None:
    head = parse_head(b"HTTP/1.1 200 OK\r\nContent-Length: 10")
    assert (head.length, head.chunked, head.keep_alive) == (10, False, True)
    payload, body = decode(head, b"0123456789", [3, 4])
    assert payload == b"0123456789"
    assert body.done
    body = Body(head)
    body.feed(b"0123")
    with pytest.raises(httpx.RemoteProtocolError):  # the connection closed 6 bytes short
        body.eof()
    head = parse_head(b"HTTP/1.1 200 OK\r\ncontent-type: text/plain")  # neither: the body ends with the connection
    assert (head.chunked, head.length) == (False, None)
    assert not head.keep_alive
    body = Body(head)
    assert body.feed(b"abc") == b"abc"
    assert not body.done
    body.eof()
    assert body.done


@pytest.mark.parametrize(("raw", "keep"), [
    (b"HTTP/1.1 200 OK\r\ncontent-length: 0", True),
    (b"HTTP/1.1 200 OK\r\nConnection: close\r\ncontent-length: 0", False),
    (b"HTTP/1.1 200 OK\r\nconnection: Keep-Alive, Upgrade\r\ncontent-length: 0", True),
    (b"HTTP/1.0 200 OK\r\ncontent-length: 0", False),
    (b"HTTP/1.0 200 OK\r\nconnection: keep-alive\r\ncontent-length: 0", True),
    (b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\ncontent-length: 5", False),  # ambiguous: not reused
])
def test_whether_a_connection_may_be_kept(raw: bytes, keep: bool) -> None:
    assert parse_head(raw).keep_alive is keep


def test_statuses_without_a_body_and_informational_heads() -> None:
    assert parse_head(b"HTTP/1.1 204 No Content").length == 0
    assert parse_head(b"HTTP/1.1 304 Not Modified\r\ntransfer-encoding: chunked").length == 0
    early = parse_head(b"HTTP/1.1 103 Early Hints\r\nlink: </a>")
    assert early.informational
    assert early.length == 0
    assert not parse_head(b"HTTP/1.1 200 OK\r\ncontent-length: 1").informational


@pytest.mark.parametrize("raw", [
    b"ICY 200 OK", b"HTTP/1.1 2xx OK", b"HTTP/2 200", b"HTTP/1.1 200 OK\r\nno colon here",
    b"HTTP/1.1 200 OK\r\n folded: line", b"HTTP/1.1 200 OK\r\ncontent-length: -1",
    b"HTTP/1.1 200 OK\r\ncontent-length: 5\r\ncontent-length: 6",
])
def test_a_malformed_head_is_a_protocol_error(raw: bytes) -> None:
    with pytest.raises(httpx.RemoteProtocolError):
        parse_head(raw)
