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
                 omit_nulls: bool = False, line_end: bytes = b"\n\n", prompt_tokens: int = 0,
                 token_ids: bool | None = None) -> None:
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
        # vLLM's token-id fields: None, the engine has none (SGLang, TensorRT-LLM); False, vLLM writes them as
        # nulls; True, the request asked for ``return_token_ids`` (ids here are positions: the simulator has no
        # vocabulary).
        self.token_ids = token_ids
        self.sent_ids = [0] * request.n
        self.sent_prompt = False

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

    def _choice(self, index: int, text: str, finish: str | None, role: bool = False,
                tokens: int = 0) -> dict[str, Any]:
        if self.chat:
            delta: dict[str, Any] = {"role": "assistant", "content": text} if role else {"content": text}
            choice: dict[str, Any] = {"index": index, "delta": delta, "logprobs": None, "finish_reason": finish}
            if finish is not None and self.token_ids is not None:
                choice["stop_reason"] = None
            if not role and self.token_ids is not None:
                choice["token_ids"] = self._ids(index, tokens)
            return choice
        choice = {"index": index, "text": text, "logprobs": None, "finish_reason": finish, "stop_reason": None}
        if self.token_ids is not None:
            choice["prompt_token_ids"] = self._prompt_ids()
            choice["token_ids"] = self._ids(index, tokens)
        return choice

    def _ids(self, index: int, tokens: int) -> list[int] | None:
        if not self.token_ids:
            return None
        start, self.sent_ids[index] = self.sent_ids[index], self.sent_ids[index] + tokens
        return list(range(start, start + tokens))

    def _prompt_ids(self) -> list[int] | None:
        """vLLM sends the prompt's ids once, on the first chunk (chat: at the top level of the role chunk)."""
        if not self.token_ids or self.sent_prompt:
            return None
        self.sent_prompt = True
        return list(range(self.prompt_tokens))

    def head(self) -> bytes:
        """The role-only first chunk of each chat choice: it carries no token."""
        if not self.chat:
            return b""
        out = []
        for i in range(self.request.n):
            chunk = self._chunk([self._choice(i, "", None, role=True)])
            if self.token_ids is not None:
                chunk["prompt_token_ids"], chunk["prompt_text"] = self._prompt_ids(), None
            out.append(self.data(chunk))
        return b"".join(out)

    def delta(self, d: Delta) -> bytes:
        self.completion_tokens += d.tokens
        self.texts[d.index] += d.text
        return self.data(self._chunk([self._choice(d.index, d.text, None, tokens=d.tokens)]))

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
