"""Request bodies -> validated, normalized GenerationRequests. Every refusal names the field (``param``)."""

from __future__ import annotations

import re
from typing import Any, TypeVar

import msgspec

from backends.request import ChatMessage, GenerationRequest
from gateway.config.schema import LimitsConfig, ModelConfig
from gateway.errors import APIError, invalid
from gateway.protocol import ENGINE_EXTRAS, ChatCompletionRequest, CompletionRequest, Message

T = TypeVar("T", ChatCompletionRequest, CompletionRequest)
S = TypeVar("S")
_PATH = re.compile(r" - at `\$\.?([^`]*)`$")
_MISSING = re.compile(r"Object missing required field `([^`]+)`")
MAX_STOPS = 4

_decoders: dict[type[Any], msgspec.json.Decoder[Any]] = {
    t: msgspec.json.Decoder(t) for t in (ChatCompletionRequest, CompletionRequest)}


def decode(body: bytes, kind: type[T]) -> T:
    return decode_as(body, kind)


def decode_as(body: bytes, kind: type[S]) -> S:
    """Decode a JSON body into ``kind``; a bad one is a 400 naming the field."""
    decoder = _decoders.get(kind)
    try:
        # strict=False for the others: JSON Schema counts 3.0 as an integer, and so must an integer field here.
        result: S = decoder.decode(body) if decoder is not None else msgspec.json.decode(body, type=kind,
                                                                                          strict=False)
        return result
    except msgspec.ValidationError as exc:
        text = str(exc)
        missing = _MISSING.search(text)
        if missing:
            path = _PATH.search(text)
            field = (path.group(1) + "." if path else "") + missing.group(1)
            raise invalid(field, f"Missing required parameter: '{field}'.") from None
        m = _PATH.search(text)
        param = m.group(1) if m else None
        detail = text[: m.start()] if m else text
        raise invalid(param, f"Invalid value for '{param}': {detail}." if param else f"Invalid body: {detail}.") \
            from None
    except msgspec.DecodeError:
        raise invalid(None, "We could not parse the JSON body of your request. (HINT: This likely means you "
                            "aren't using your HTTP library correctly. The OpenAI API expects a JSON payload.)") \
            from None


def _message_text(i: int, m: Message) -> str:
    if m.content is None or isinstance(m.content, str):
        return m.content or ""
    parts = []
    for j, part in enumerate(m.content):
        if part.type != "text" or part.text is None:
            raise invalid(f"messages[{i}].content[{j}].type",
                          f"Content part type {part.type!r} is not supported: only 'text' parts are.")
        parts.append(part.text)
    return "".join(parts)


def _check_sampling(req: ChatCompletionRequest | CompletionRequest, max_tokens: int | None, max_tokens_param: str,
                    model: ModelConfig, limits: LimitsConfig) -> int:
    if max_tokens is not None:
        if max_tokens <= 0:
            raise invalid(max_tokens_param, f"Invalid '{max_tokens_param}': integer below minimum value. "
                                            f"Expected a value >= 1, but got {max_tokens} instead.",
                          code="integer_below_min_value")
        if max_tokens > model.max_output_tokens:
            raise invalid(max_tokens_param, f"{max_tokens_param} is too large: {max_tokens}. This model supports "
                                            f"at most {model.max_output_tokens} completion tokens.",
                          code="integer_above_max_value")
    if req.temperature is not None and not 0 <= req.temperature <= 2:
        raise invalid("temperature", f"Invalid 'temperature': {req.temperature} is not in [0, 2].",
                      code="decimal_out_of_range")
    if req.top_p is not None and not 0 < req.top_p <= 1:
        raise invalid("top_p", f"Invalid 'top_p': {req.top_p} is not in (0, 1].", code="decimal_out_of_range")
    if req.n is not None and not 1 <= req.n <= limits.max_n:
        raise invalid("n", f"Invalid 'n': {req.n} is not in [1, {limits.max_n}].", code="integer_out_of_range")
    if req.stream_options is not None and not req.stream:
        raise invalid("stream_options", "The 'stream_options' parameter is only allowed when 'stream' is enabled.")
    if req.logprobs:
        raise invalid("logprobs", "logprobs are not supported by this gateway.", code="unsupported_parameter")
    if req.top_k is not None and req.top_k < -1:
        raise invalid("top_k", f"Invalid 'top_k': {req.top_k}; use -1 (off) or a positive integer.")
    if req.min_tokens is not None and req.min_tokens < 0:
        raise invalid("min_tokens", f"Invalid 'min_tokens': {req.min_tokens} is negative.")
    return max_tokens if max_tokens is not None else model.max_output_tokens


def _stops(stop: str | list[str] | None) -> tuple[str, ...]:
    if stop is None:
        return ()
    stops = (stop,) if isinstance(stop, str) else tuple(stop)
    if len(stops) > MAX_STOPS:
        raise invalid("stop", f"Invalid 'stop': at most {MAX_STOPS} stop sequences are allowed.")
    return tuple(s for s in stops if s)


def _extras(req: ChatCompletionRequest | CompletionRequest) -> dict[str, Any]:
    return {name: value for name in ENGINE_EXTRAS if (value := getattr(req, name)) is not None}


def normalize_chat(req: ChatCompletionRequest, request_id: str, model: ModelConfig,
                   limits: LimitsConfig) -> GenerationRequest:
    if not req.messages:
        raise invalid("messages", "Invalid 'messages': empty array. Expected an array with minimum length 1, "
                                  "but got an empty array instead.", code="empty_array")
    if req.tools:
        raise invalid("tools", "Tool calling is not supported by this gateway.", code="unsupported_parameter")
    if req.top_logprobs:
        raise invalid("top_logprobs", "logprobs are not supported by this gateway.", code="unsupported_parameter")
    max_tokens: int | None = req.max_tokens
    param = "max_tokens"
    if req.max_completion_tokens is not None:
        max_tokens, param = req.max_completion_tokens, "max_completion_tokens"
    limit = _check_sampling(req, max_tokens, param, model, limits)
    messages = tuple(ChatMessage(m.role, _message_text(i, m), m.name) for i, m in enumerate(req.messages))
    return GenerationRequest(
        request_id=request_id, model=req.model, operation="chat", max_tokens=limit, stream=bool(req.stream),
        messages=messages, temperature=req.temperature, top_p=req.top_p, n=req.n or 1, stop=_stops(req.stop),
        seed=req.seed, user=req.user, extra=_extras(req))


def normalize_completion(req: CompletionRequest, request_id: str, model: ModelConfig,
                         limits: LimitsConfig) -> GenerationRequest:
    if isinstance(req.prompt, list):
        if len(req.prompt) != 1 or not isinstance(req.prompt[0], str):
            raise invalid("prompt", "Only a single string prompt is supported (no batches, no token ids).",
                          code="unsupported_parameter")
        prompt = req.prompt[0]
    else:
        prompt = req.prompt
    if req.echo:
        raise invalid("echo", "echo is not supported by this gateway.", code="unsupported_parameter")
    if req.suffix:
        raise invalid("suffix", "suffix is not supported by this gateway.", code="unsupported_parameter")
    if req.best_of is not None and req.best_of != (req.n or 1):
        raise invalid("best_of", "best_of other than n is not supported by this gateway.",
                      code="unsupported_parameter")
    limit = _check_sampling(req, req.max_tokens, "max_tokens", model, limits)
    return GenerationRequest(
        request_id=request_id, model=req.model, operation="text_completion", max_tokens=limit,
        stream=bool(req.stream), prompt=prompt, temperature=req.temperature, top_p=req.top_p, n=req.n or 1,
        stop=_stops(req.stop), seed=req.seed, user=req.user, extra=_extras(req))


def model_not_found(model: str) -> APIError:
    return APIError(404, f"The model `{model}` does not exist or you do not have access to it.",
                    param="model", code="model_not_found")
