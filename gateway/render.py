"""Events -> OpenAI response bodies and SSE chunks, for chat and text completions."""

from __future__ import annotations

import time
import uuid
from typing import Any

import msgspec

from backends.events import Completed, Delta
from gateway.errors import APIError
from gateway.protocol import (
    AssistantMessage,
    ChatChoice,
    ChatCompletion,
    TextChoice,
    TextCompletion,
    Usage,
)

DONE = b"data: [DONE]\n\n"
_encode = msgspec.json.encode


def sse(payload: Any) -> bytes:
    return b"data: " + _encode(payload) + b"\n\n"


def usage_of(done: Completed) -> Usage:
    return Usage(done.prompt_tokens, done.completion_tokens, done.prompt_tokens + done.completion_tokens)


class Renderer:
    """Shapes one response. ``chat`` selects chat.completion(.chunk) over text_completion."""

    def __init__(self, chat: bool, model: str, n: int, include_usage: bool) -> None:
        self.chat = chat
        self.model = model
        self.n = n
        self.include_usage = include_usage
        self.id = ("chatcmpl-" if chat else "cmpl-") + uuid.uuid4().hex
        self.created = int(time.time())
        self._object = "chat.completion.chunk" if chat else "text_completion"
        # A content chunk is the same bytes as ``_chunk([_choice(i, text, None)])`` with two holes (the index and
        # the text): built once per response, so each token costs one string encode and one bytes format.
        head = _encode({"id": self.id, "object": self._object, "created": self.created, "model": self.model,
                        "system_fingerprint": None})
        self._delta_head = b"data: " + head[:-1] + b',"choices":[{"index":%d,' + (
            b'"delta":{"content":%s},' if chat else b'"text":%s,')
        self._delta_tail = b'"logprobs":null,"finish_reason":null}]' + (
            b',"usage":null' if include_usage else b"") + b"}\n\n"

    def _chunk(self, choices: list[dict[str, Any]]) -> bytes:
        chunk: dict[str, Any] = {"id": self.id, "object": self._object, "created": self.created,
                                 "model": self.model, "system_fingerprint": None, "choices": choices}
        if self.include_usage:
            chunk["usage"] = None
        return sse(chunk)

    def _choice(self, index: int, text: str | None, finish_reason: str | None, role: bool = False) -> dict[str, Any]:
        if self.chat:
            delta: dict[str, Any] = {}
            if role:
                delta = {"role": "assistant", "content": "", "refusal": None}
            elif text is not None:
                delta = {"content": text}
            return {"index": index, "delta": delta, "logprobs": None, "finish_reason": finish_reason}
        return {"index": index, "text": text or "", "logprobs": None, "finish_reason": finish_reason}

    def opening(self) -> bytes:
        """Chat streams start with a role-only chunk per choice; text completions have none."""
        if not self.chat:
            return b""
        return b"".join(self._chunk([self._choice(i, None, None, role=True)]) for i in range(self.n))

    def delta(self, delta: Delta) -> bytes:
        return self._delta_head % (delta.index, _encode(delta.text)) + self._delta_tail

    def closing(self, done: Completed) -> bytes:
        out = [self._chunk([self._choice(i, None if self.chat else "", reason)])
               for i, reason in enumerate(done.finish_reasons)]
        if self.include_usage:
            out.append(sse({"id": self.id, "object": self._object, "created": self.created, "model": self.model,
                            "system_fingerprint": None, "choices": [], "usage": usage_of(done)}))
        out.append(DONE)
        return b"".join(out)

    @staticmethod
    def error(err: APIError) -> bytes:
        return sse(err.body()) + DONE

    def body(self, texts: list[str], done: Completed) -> bytes:
        if self.chat:
            return _encode(ChatCompletion(
                id=self.id, created=self.created, model=self.model, usage=usage_of(done),
                choices=[ChatChoice(i, AssistantMessage(content=texts[i]), reason)
                         for i, reason in enumerate(done.finish_reasons)]))
        return _encode(TextCompletion(
            id=self.id, created=self.created, model=self.model, usage=usage_of(done),
            choices=[TextChoice(i, texts[i], reason) for i, reason in enumerate(done.finish_reasons)]))
