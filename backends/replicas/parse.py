"""Incoming engine requests (OpenAI bodies, SGLang's ``/generate``, Triton's ``generate_stream``) as the
simulator's GenerationRequest."""

from __future__ import annotations

import uuid
from typing import Any

from backends.request import ChatMessage, GenerationRequest

EXTRAS = ("top_k", "min_p", "min_tokens", "ignore_eos", "repetition_penalty", "stop_token_ids", "priority")


class BadRequest(Exception):
    def __init__(self, message: str, param: str | None = None, status: int = 400) -> None:
        super().__init__(message)
        self.message = message
        self.param = param
        self.status = status


def _stops(value: Any) -> tuple[str, ...]:
    if value is None:
        return ()
    return (value,) if isinstance(value, str) else tuple(str(s) for s in value)


def _int(body: dict[str, Any], key: str, default: int) -> int:
    value = body.get(key, default)
    if value is None:
        return default
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise BadRequest(f"{key} must be a positive integer, got {value!r}", key)
    return value


def checked_priority(body: dict[str, Any], *, integer: bool) -> int | float | None:
    """The body's ``priority`` validated as the engine's schema types it (vLLM and SGLang: int; TensorRT-LLM: a
    float), so a wrongly typed priority is refused here as it is there."""
    value = body.get("priority")
    if value is None:
        return None
    valid = isinstance(value, int) if integer else isinstance(value, int | float)
    if isinstance(value, bool) or not valid:
        kind = "integer" if integer else "number"
        raise BadRequest(f"priority: Input should be a valid {kind}, got {value!r}", "priority")
    priority: int | float = value
    return priority


def openai_request(body: dict[str, Any], chat: bool, default_max_tokens: int) -> GenerationRequest:
    model = body.get("model")
    if not isinstance(model, str):
        raise BadRequest("model is required", "model")
    common: dict[str, Any] = {
        "request_id": str(body.get("request_id") or uuid.uuid4().hex), "model": model,
        "max_tokens": _int(body, "max_tokens", default_max_tokens), "temperature": body.get("temperature"),
        "top_p": body.get("top_p"), "n": _int(body, "n", 1), "stop": _stops(body.get("stop")),
        "seed": body.get("seed"), "extra": {k: body[k] for k in EXTRAS if body.get(k) is not None}}
    if chat:
        messages = body.get("messages")
        if not isinstance(messages, list) or not messages:
            raise BadRequest("messages must be a non-empty list", "messages")
        msgs = tuple(ChatMessage(role=str(m.get("role")), content=str(m.get("content") or ""))
                     for m in messages if isinstance(m, dict))
        return GenerationRequest(operation="chat", messages=msgs, **common)
    prompt = body.get("prompt")
    if not isinstance(prompt, str):
        raise BadRequest("prompt must be a string", "prompt")
    return GenerationRequest(operation="text_completion", prompt=prompt, **common)


def sglang_generate_request(body: dict[str, Any], model: str) -> GenerationRequest:
    text = body.get("text")
    if not isinstance(text, str):
        raise BadRequest("text must be a string (input_ids are not supported by the replica)", "text")
    params = body.get("sampling_params") or {}
    extra = {k: params[k] for k in EXTRAS if params.get(k) is not None}
    if body.get("priority") is not None:  # top level in /generate, next to the sampling params
        extra["priority"] = body["priority"]
    if params.get("min_new_tokens") is not None:
        extra["min_tokens"] = params["min_new_tokens"]
    return GenerationRequest(
        request_id=str(body.get("rid") or uuid.uuid4().hex), model=model, operation="text_completion",
        prompt=text, max_tokens=_int(params, "max_new_tokens", 128), temperature=params.get("temperature"),
        top_p=params.get("top_p"), n=_int(params, "n", 1), stop=_stops(params.get("stop")),
        seed=params.get("sampling_seed"), extra=extra)


def triton_request(body: dict[str, Any], model: str) -> GenerationRequest:
    text = body.get("text_input")
    if not isinstance(text, str):
        raise BadRequest("text_input is required")
    if "max_tokens" not in body:
        raise BadRequest("max_tokens is required")
    return GenerationRequest(
        request_id=uuid.uuid4().hex, model=model, operation="text_completion", prompt=text,
        max_tokens=_int(body, "max_tokens", 16), temperature=body.get("temperature"), top_p=body.get("top_p"),
        stop=_stops(body.get("stop_words")),
        extra={"top_k": body["top_k"]} if body.get("top_k") is not None else {})
