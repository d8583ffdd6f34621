"""SSE framing, the HTTP/1.1 chunked decoder, and how one response's events become a record."""

from __future__ import annotations

import asyncio
import json

import pytest

from loadtest.client import _Stream, request_body, spread_tokens
from loadtest.config import BenchSpec, LoadShape, Target
from loadtest.dataset import Prompt
from loadtest.record import RequestRecord
from loadtest.sse import SSEParser
from loadtest.tokens import WordCounter
from loadtest.transport import _Conn, _H1Response


def test_sse_events_split_across_reads() -> None:
    p = SSEParser()
    assert p.feed(b"data: {\"a\"") == []
    assert p.feed(b": 1}\n") == []
    assert p.feed(b"\ndata: [DONE]\r\n\r\n: comment\n\n") == [b'{"a": 1}', b"[DONE]"]
    assert p.feed(b"data: cut") == []
    assert p.close() == [b"cut"]


def _record() -> RequestRecord:
    return RequestRecord(target="t", point=0, round=0, index=0, prompt_id="p", t_sched=0.0, t_send=0.0)


def _event(obj: object) -> bytes:
    return json.dumps(obj).encode()


def _delta(text: str | None, finish: str | None = None, role: bool = False) -> bytes:
    delta: dict[str, object] = {"role": "assistant", "content": ""} if role else {}
    if text is not None:
        delta["content"] = text
    return _event({"choices": [{"index": 0, "delta": delta, "finish_reason": finish}]})


def test_role_only_and_empty_chunks_are_not_tokens() -> None:
    s = _Stream(_record(), WordCounter())
    s.on_read(0.01, [_delta(None, role=True)])
    s.on_read(0.02, [_delta("")])
    assert s.r.t_first is None
    s.on_read(0.05, [_delta("hello there")])
    s.on_read(0.07, [_delta(" world"), _delta(None, "stop"), b"[DONE]"])
    s.finish()
    assert s.r.t_first == 0.05
    assert s.r.t_last == 0.07
    assert s.r.chunk_tokens == [2, 1]
    assert (s.r.n_out, s.r.n_out_source) == (3, "tokenizer:words")
    assert s.r.outcome == "ok"


def test_usage_overrides_the_estimate_and_rescales_chunks() -> None:
    s = _Stream(_record(), WordCounter())
    s.on_read(0.05, [_delta("a b")])
    s.on_read(0.07, [_delta("c d"), _delta(None, "length")])
    s.on_read(0.08, [_event({"choices": [], "usage": {"prompt_tokens": 9, "completion_tokens": 6}}), b"[DONE]"])
    s.finish()
    assert (s.r.n_out, s.r.n_out_source, s.r.n_in) == (6, "usage", 9)
    assert s.r.chunk_tokens == [3, 3]
    assert s.r.chunk_tokens_source == "tokenizer:words+usage"


def test_error_event_is_an_error_even_with_done() -> None:
    s = _Stream(_record(), WordCounter())
    s.on_read(0.05, [_event({"error": {"message": "boom", "type": "server_error"}}), b"[DONE]"])
    s.finish()
    assert (s.r.outcome, s.r.error_type, s.r.error_message) == ("error", "stream_error:server_error", "boom")


def test_text_completions_and_reasoning_deltas_count() -> None:
    s = _Stream(_record(), WordCounter())
    s.on_read(0.05, [_event({"choices": [{"index": 0, "text": "one two", "finish_reason": None}]})])
    s.on_read(0.06, [_event({"choices": [{"index": 0, "delta": {"reasoning_content": "hmm"}}]})])
    assert s.r.chunk_tokens == [2, 1]


def test_spread_tokens_matches_the_total() -> None:
    assert spread_tokens([1, 1, 1], 3) == [1, 1, 1]
    assert sum(spread_tokens([2, 1, 1], 7)) == 7
    assert spread_tokens([1, 1], 4) == [2, 2]
    assert sum(spread_tokens([0, 0, 0], 5)) == 5


def test_request_body_sends_ignore_eos_top_level_and_asks_for_usage() -> None:
    spec = BenchSpec(targets=(Target(base_url="http://x/v1", model="m"),), loads=(LoadShape(concurrency=1),),
                     num_requests=1)
    body = request_body(spec, spec.targets[0], Prompt(id="p", text="hi", input_tokens=1, output_tokens=7))
    assert body["ignore_eos"] is True
    assert body["max_tokens"] == 7
    assert body["stream_options"] == {"include_usage": True}
    assert body["messages"] == [{"role": "user", "content": "hi"}]


class _FakeReader:
    def __init__(self, reads: list[bytes]) -> None:
        self.reads = reads

    async def read(self, _: int) -> bytes:
        return self.reads.pop(0) if self.reads else b""


@pytest.mark.parametrize("split", [1, 3, 7, 1000])
def test_chunked_decoding_across_any_read_boundaries(split: int) -> None:
    wire = b"5\r\nhello\r\n1;ext=1\r\n \r\n5\r\nworld\r\n0\r\nx-trailer: 1\r\n\r\nLEFTOVER"
    reads = [wire[i:i + split] for i in range(0, len(wire), split)]
    conn = _Conn(_FakeReader(reads), None)  # type: ignore[arg-type]
    resp = _H1Response(conn, 200, {"transfer-encoding": "chunked"})
    assert asyncio.run(resp.aread()) == b"hello world"
    assert resp.complete
    assert conn.buffer.startswith(b"LEFTOVER"[: len(conn.buffer)])


def test_content_length_body_stops_at_its_length() -> None:
    conn = _Conn(_FakeReader([b"abc", b"defEXTRA"]), None)  # type: ignore[arg-type]
    resp = _H1Response(conn, 200, {"content-length": "6"})
    assert asyncio.run(resp.aread()) == b"abcdef"
    assert conn.buffer == b"EXTRA"
