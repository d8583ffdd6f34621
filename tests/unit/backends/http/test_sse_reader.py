"""The SSE reader: every engine quirk, and any chunking of a valid stream gives the same events."""

from __future__ import annotations

import asyncio

from hypothesis import given, settings
from hypothesis import strategies as st

from backends.http.sse import SSEDecoder, SSEEvent, aiter_sse


def decode_all(chunks: list[bytes]) -> list[SSEEvent]:
    decoder = SSEDecoder()
    out = [e for c in chunks for e in decoder.feed(c)]
    return out + decoder.close()


def datas(events: list[SSEEvent]) -> list[str]:
    return [e.data for e in events]


def test_trailing_space_before_newline_is_trimmed() -> None:
    # TensorRT-LLM writes "data: {json} \n\n"
    assert datas(decode_all([b'data: {"a":1} \n\ndata: [DONE]\n\n'])) == ['{"a":1}', "[DONE]"]


def test_comment_lines_are_keepalives_not_events() -> None:
    assert datas(decode_all([b": ping\n\n: another\ndata: x\n\n"])) == ["x"]


def test_named_events_keep_their_name() -> None:
    events = decode_all([b"event: error\ndata: boom\n\ndata: plain\n\n"])
    assert [(e.event, e.data) for e in events] == [("error", "boom"), ("message", "plain")]


def test_crlf_and_cr_line_ends() -> None:
    assert datas(decode_all([b"data: a\r\n\r\ndata: b\r\rdata: c\n\n"])) == ["a", "b", "c"]


def test_multiline_data_is_joined_with_newlines() -> None:
    assert datas(decode_all([b"data: a\ndata: b\n\n"])) == ["a\nb"]


def test_stream_without_final_blank_line_still_yields_last_event() -> None:
    assert datas(decode_all([b"data: a\n\ndata: b"])) == ["a", "b"]


def test_no_space_after_colon() -> None:
    assert datas(decode_all([b"data:{\"x\":2}\n\n"])) == ['{"x":2}']


def test_partial_line_waits_for_the_rest() -> None:
    decoder = SSEDecoder()
    assert decoder.feed(b'data: {"te') == []
    assert datas(decoder.feed(b'xt":"hi"}\n')) == []
    assert datas(decoder.feed(b"\n")) == ['{"text":"hi"}']


def test_cr_at_chunk_end_followed_by_lf_is_one_line_end() -> None:
    decoder = SSEDecoder()
    assert decoder.feed(b"data: a\r") == []
    assert datas(decoder.feed(b"\n\r\n")) == ["a"]


def test_events_carry_the_arrival_time_of_the_completing_read() -> None:
    async def chunks():  # type: ignore[no-untyped-def]
        yield b"data: a\n"
        await asyncio.sleep(0.02)
        yield b"\n"

    async def run() -> list[SSEEvent]:
        return [e async for e in aiter_sse(chunks())]

    (event,) = asyncio.run(run())
    assert event.data == "a"
    assert event.t_ns > 0


# ---- property: arbitrary chunking -----------------------------------------------------------------------

payload = st.text(alphabet=st.characters(blacklist_characters="\r\n", blacklist_categories=("Cs",)), max_size=40)
payload = payload.map(lambda s: s.strip())
line_end = st.sampled_from([b"\n", b"\r\n", b"\r"])
trailing = st.sampled_from([b"", b" ", b"  "])


@st.composite
def streams(draw: st.DrawFn) -> tuple[bytes, list[str]]:
    parts: list[bytes] = []
    expected: list[str] = []
    for _ in range(draw(st.integers(0, 8))):
        if draw(st.booleans()):
            parts.append(b": keep-alive" + draw(line_end))
        if draw(st.booleans()):
            parts.append(b"event: " + draw(st.sampled_from([b"message", b"ping", b"error"])) + draw(line_end))
        data = draw(payload)
        if not data:
            continue
        sep = draw(st.sampled_from([b"data: ", b"data:"]))
        end = draw(line_end)  # the same twice: "\r" then "\n" would be one line end, not two
        parts.append(sep + data.encode() + draw(trailing) + end + end)
        expected.append(data)
    body = b"".join(parts)
    if draw(st.booleans()) and body.endswith((b"\n\n", b"\r\n\r\n")) and expected:
        body = body.rstrip(b"\r\n")  # a stream that stops without its final blank line
    return body, expected


@settings(max_examples=300, deadline=None)
@given(stream=streams(), data=st.data())
def test_any_chunking_gives_the_same_events(stream: tuple[bytes, list[str]], data: st.DataObject) -> None:
    body, expected = stream
    cuts = sorted(data.draw(st.lists(st.integers(0, len(body)), max_size=12)))
    chunks = [body[a:b] for a, b in zip([0, *cuts], [*cuts, len(body)], strict=True)]
    assert datas(decode_all(chunks)) == expected


@settings(max_examples=200, deadline=None)
@given(body=st.binary(max_size=200), data=st.data())
def test_chunking_never_changes_the_result_even_for_garbage(body: bytes, data: st.DataObject) -> None:
    cuts = sorted(data.draw(st.lists(st.integers(0, len(body)), max_size=10)))
    chunks = [body[a:b] for a, b in zip([0, *cuts], [*cuts, len(body)], strict=True)]
    assert decode_all(chunks) == decode_all([body])
