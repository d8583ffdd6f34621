"""OpenAI-style engine endpoints (vLLM, SGLang's and TensorRT-LLM's ``/v1/...``): request bodies and chunks."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from backends.events import Completed, Delta, Failed
from backends.http.base import finish_reason
from backends.http.translate import EngineCall
from backends.request import GenerationRequest


def openai_call(request: GenerationRequest, model: str, *, extras: Iterable[str] | None,
                continuous_usage: bool, stream_options: bool = True) -> EngineCall:
    """A streaming request body. ``extras``: engine extras to pass on (None: all of ``request.extra``)."""
    body: dict[str, Any] = {"model": model, "max_tokens": request.max_tokens, "stream": True}
    if stream_options:
        body["stream_options"] = {"include_usage": True, **({"continuous_usage_stats": True}
                                                             if continuous_usage else {})}
    if request.operation == "chat":
        path = "/v1/chat/completions"
        body["messages"] = [{"role": m.role, "content": m.content, **({"name": m.name} if m.name else {})}
                            for m in request.messages]
        prompt_param = "messages"
    else:
        path = "/v1/completions"
        body["prompt"] = request.prompt
        prompt_param = "prompt"
    for key in ("temperature", "top_p", "seed", "user"):
        value = getattr(request, key)
        if value is not None:
            body[key] = value
    if request.n != 1:
        body["n"] = request.n
    if request.stop:
        body["stop"] = list(request.stop)
    allowed = None if extras is None else set(extras)
    for key, value in request.extra.items():
        # The engine priority comes from the job's band (each adapter maps it), never from a request field.
        if (allowed is None or key in allowed) and key != "priority":
            body[key] = value
    return EngineCall(path=path, body=body, prompt_param=prompt_param)


class OpenAIChunks:
    """Chat or completion chunks -> Deltas and one Completed.

    Token counts, the first that a chunk offers: its choice's ``token_ids`` (vLLM's ``return_token_ids``: exact
    per choice, any ``n``); with ``continuous_usage_stats`` the cumulative usage (exact for ``n`` = 1); else each
    text-bearing chunk counts as one token (engines send one decode step per chunk, but vLLM merges steps into
    one chunk when its API server falls behind) and the final usage chunk corrects the total in ``Completed``.
    """

    def __init__(self, request: GenerationRequest) -> None:
        self._chat = request.operation == "chat"
        self._n = request.n
        self._finish: dict[int, str] = {}
        self._usage: dict[str, Any] | None = None
        self._cumulative = 0
        self.tokens = 0

    def feed(self, chunk: Any, t_ns: int) -> list[Delta | Completed | Failed]:
        if not isinstance(chunk, dict):
            return []
        usage = chunk.get("usage")
        exact: int | None = None
        if isinstance(usage, dict):
            self._usage = usage
            done = usage.get("completion_tokens")
            if isinstance(done, int) and self._n == 1:
                exact, self._cumulative = max(0, done - self._cumulative), max(done, self._cumulative)
        out: list[Delta | Completed | Failed] = []
        for choice in chunk.get("choices") or ():
            index = int(choice.get("index", 0))
            text = _text(choice, self._chat)
            ids = choice.get("token_ids")
            tokens = _count(ids, exact, text)
            exact = 0 if exact is not None else None  # usage counts go to the first choice only (n = 1)
            if text or tokens:
                self.tokens += tokens
                out.append(Delta(text=text, tokens=tokens, index=index, t_ns=t_ns))
            reason = choice.get("finish_reason")
            if reason is not None:
                if reason == "abort":
                    out.append(Failed(type="engine_error", status=502, retryable=self.tokens == 0,
                                      message="the engine aborted the request"))
                    return out
                self._finish[index] = finish_reason(reason)
        return out

    def finish(self, saw_done: bool) -> Completed | Failed:
        if len(self._finish) < self._n:
            # No finish_reason for every choice: the stream was cut (TensorRT-LLM on an exception sends
            # neither an error nor [DONE]); a [DONE] without finish reasons is just as incomplete.
            return Failed(type="engine_error", status=502, retryable=self.tokens == 0,
                          message="the engine stream ended before every choice finished")
        usage = self._usage or {}
        completion = usage.get("completion_tokens")
        return Completed(
            finish_reasons=tuple(self._finish.get(i, "stop") for i in range(self._n)),
            prompt_tokens=int(usage.get("prompt_tokens") or 0),
            completion_tokens=int(completion) if isinstance(completion, int) else self.tokens)


def _count(ids: Any, exact: int | None, text: str) -> int:
    if isinstance(ids, list):
        return len(ids)
    if exact is not None:
        return exact
    return 1 if text else 0


def _text(choice: dict[str, Any], chat: bool) -> str:
    if chat:
        delta = choice.get("delta") or {}
        content = delta.get("content") if isinstance(delta, dict) else None
    else:
        content = choice.get("text")
    return content if isinstance(content, str) else ""
