"""OpenAI-style chunks as vLLM, SGLang and TensorRT-LLM write them; the differences are parameters:
``omit_nulls`` (TensorRT-LLM drops null fields) and ``line_end`` (TensorRT-LLM writes ``data: {json} \\n\\n``)."""

from __future__ import annotations

import time
from typing import Any

import msgspec

from backends.events import Completed, Delta, Failed
from backends.request import GenerationRequest

DONE = b"data: [DONE]\n\n"


def _clean(obj: Any) -> Any:
    if isinstance(obj, dict):
        return {k: _clean(v) for k, v in obj.items() if v is not None}
    if isinstance(obj, list):
        return [_clean(v) for v in obj]
    return obj


class OpenAIWire:
    def __init__(self, request: GenerationRequest, model: str, *, include_usage: bool, continuous_usage: bool,
                 omit_nulls: bool = False, line_end: bytes = b"\n\n", prompt_tokens: int = 0) -> None:
        self.request = request
        self.chat = request.operation == "chat"
        self.id = f"{'chatcmpl' if self.chat else 'cmpl'}-{request.request_id}"
        self.model = model
        self.created = int(time.time())
        self.include_usage = include_usage
        self.continuous_usage = continuous_usage
        self.omit_nulls = omit_nulls
        self.line_end = line_end
        self.prompt_tokens = prompt_tokens
        self.completion_tokens = 0
        self.texts = [""] * request.n

    def data(self, obj: Any) -> bytes:
        return b"data: " + msgspec.json.encode(_clean(obj) if self.omit_nulls else obj) + self.line_end

    def _usage(self) -> dict[str, int]:
        return {"prompt_tokens": self.prompt_tokens, "completion_tokens": self.completion_tokens,
                "total_tokens": self.prompt_tokens + self.completion_tokens}

    def _chunk(self, choices: list[dict[str, Any]]) -> dict[str, Any]:
        chunk: dict[str, Any] = {"id": self.id, "object": "chat.completion.chunk" if self.chat else "text_completion",
                                 "created": self.created, "model": self.model, "choices": choices}
        if self.continuous_usage:
            chunk["usage"] = self._usage()
        return chunk

    def _choice(self, index: int, text: str, finish: str | None, role: bool = False) -> dict[str, Any]:
        if self.chat:
            delta: dict[str, Any] = {"role": "assistant", "content": text} if role else {"content": text}
            return {"index": index, "delta": delta, "logprobs": None, "finish_reason": finish}
        return {"index": index, "text": text, "logprobs": None, "finish_reason": finish, "stop_reason": None}

    def head(self) -> bytes:
        """The role-only first chunk of each chat choice: it carries no token."""
        if not self.chat:
            return b""
        return b"".join(self.data(self._chunk([self._choice(i, "", None, role=True)]))
                        for i in range(self.request.n))

    def delta(self, d: Delta) -> bytes:
        self.completion_tokens += d.tokens
        self.texts[d.index] += d.text
        return self.data(self._chunk([self._choice(d.index, d.text, None)]))

    def completed(self, c: Completed) -> bytes:
        self.completion_tokens = c.completion_tokens
        out = [self.data(self._chunk([self._choice(i, "", reason)])) for i, reason in enumerate(c.finish_reasons)]
        if self.include_usage:
            out.append(self.data({"id": self.id, "object": "chat.completion.chunk" if self.chat
                                  else "text_completion", "created": self.created, "model": self.model,
                                  "choices": [], "usage": self._usage()}))
        out.append(DONE)
        return b"".join(out)

    def full(self, c: Completed) -> bytes:
        """The non-streaming body."""
        self.completion_tokens = c.completion_tokens
        if self.chat:
            choices: list[dict[str, Any]] = [
                {"index": i, "message": {"role": "assistant", "content": t}, "logprobs": None, "finish_reason": r}
                for i, (t, r) in enumerate(zip(self.texts, c.finish_reasons, strict=True))]
        else:
            choices = [{"index": i, "text": t, "logprobs": None, "finish_reason": r}
                       for i, (t, r) in enumerate(zip(self.texts, c.finish_reasons, strict=True))]
        body = {"id": self.id, "object": "chat.completion" if self.chat else "text_completion",
                "created": self.created, "model": self.model, "choices": choices, "usage": self._usage()}
        return msgspec.json.encode(_clean(body) if self.omit_nulls else body)


class WireStream:
    """A stream in OpenAI's format. The engines differ only in how a failure is written: subclasses
    override ``failed``."""

    def __init__(self, wire: OpenAIWire) -> None:
        self.wire = wire

    def head(self) -> bytes:
        return self.wire.head()

    def delta(self, d: Delta) -> bytes:
        return self.wire.delta(d)

    def completed(self, c: Completed) -> bytes:
        return self.wire.completed(c)

    def full(self, c: Completed) -> bytes:
        return self.wire.full(c)

    def failed(self, f: Failed) -> bytes | None:
        raise NotImplementedError
