"""Engine errors mapped to lockgate's ``Failed`` events, in OpenAI's vocabulary.

Engines answer errors in three shapes: vLLM's nested ``{"error": {"message", "type", "param", "code"}}``, the flat
``{"object": "error", "message", ...}`` of SGLang's and TensorRT-LLM's OpenAI endpoints, and a bare
``{"error": "text"}`` (TensorRT-LLM validation, Triton). None of them sends OpenAI's ``context_length_exceeded``
code, so context overflows are recognised by their message and given that code, naming the limit.
"""

from __future__ import annotations

import re
from typing import Any

import httpx
import msgspec

from backends.events import Failed

# Each pattern captures the context limit in group "limit".
_CONTEXT_PATTERNS = (
    re.compile(r"maximum context length is (?P<limit>\d+)", re.I),  # vLLM, OpenAI
    re.compile(r"upper bound for (?P<limit>\d+) input tokens", re.I),  # vLLM CPU 0.32, refused by characters
    re.compile(r"longer than the model's context length \((?P<limit>\d+)", re.I),  # SGLang
    re.compile(r"(?:max(?:imum)?[ _]seq(?:uence)?[ _]len(?:gth)?|max_num_tokens|max_input_len)\D{0,20}"
               r"(?P<limit>\d+)", re.I),  # TensorRT-LLM
    re.compile(r"exceeds max length (?P<limit>\d+)", re.I),
    re.compile(r"max_model_len=(?P<limit>\d+)", re.I),  # vLLM: max_tokens over the whole context
)
_CONTEXT_WORDS = re.compile(r"context length|context window|max_model_len|exceeds max", re.I)
_RETRYABLE_STATUS = frozenset({408, 425, 429, 500, 502, 503, 504})


class EngineError(msgspec.Struct, frozen=True):
    """An engine's error, whatever shape it came in."""

    message: str
    status: int
    type: str | None = None
    param: str | None = None


def parse_error_body(body: bytes, status: int) -> EngineError:
    try:
        obj: Any = msgspec.json.decode(body)
    except msgspec.DecodeError:
        text = body.decode("utf-8", "replace").strip()
        return EngineError(message=text or f"HTTP {status}", status=status)
    return error_from_object(obj, status) or EngineError(message=str(obj)[:500], status=status)


def error_from_object(obj: Any, status: int = 500) -> EngineError | None:
    """The error carried by a decoded JSON object, if it is one (used for bodies and for stream chunks)."""
    if not isinstance(obj, dict):
        return None
    err = obj.get("error")
    if isinstance(err, dict):
        return EngineError(message=str(err.get("message") or err), status=_status(err.get("code"), status),
                           type=_str(err.get("type")), param=_str(err.get("param")))
    if isinstance(err, str):
        return EngineError(message=err, status=status)
    if obj.get("object") == "error":
        return EngineError(message=str(obj.get("message", "")), status=_status(obj.get("code"), status),
                           type=_str(obj.get("type")), param=_str(obj.get("param")))
    detail = obj.get("detail")
    if detail is not None and status >= 400:  # FastAPI's default error shape
        return EngineError(message=str(detail), status=status)
    return None


def context_limit(message: str) -> int | None:
    for pattern in _CONTEXT_PATTERNS:
        m = pattern.search(message)
        if m:
            return int(m.group("limit"))
    return None


def to_failed(err: EngineError, *, prompt_param: str = "messages", after_tokens: bool = False) -> Failed:
    """Map an engine error; ``after_tokens``: tokens already went out, so nothing may be retried."""
    limit = context_limit(err.message)
    if err.status == 400 and (limit is not None or _CONTEXT_WORDS.search(err.message)):
        message = err.message
        if limit is not None and "maximum context length is" not in message:
            message = f"This model's maximum context length is {limit} tokens. {message}"
        # The engine's own param names vary ("input_tokens", "input_text"); OpenAI blames the prompt, or
        # max_tokens when that alone cannot fit.
        param = "max_tokens" if err.param == "max_tokens" else prompt_param
        return Failed(type="invalid_request_error", code="context_length_exceeded", status=400, message=message,
                      param=param)
    if 400 <= err.status < 500 and err.status not in _RETRYABLE_STATUS:
        if err.status in (401, 403, 404):
            # The engine refused lockgate itself (wrong served model name, auth): a configuration problem,
            # not the client's; another backend may be configured right.
            return Failed(type="engine_error", status=502, retryable=not after_tokens,
                          message=f"the engine refused the request ({err.status}): {err.message}")
        return Failed(type="invalid_request_error", status=400, message=err.message, param=err.param)
    status = 503 if err.status in (429, 503) else 504 if err.status in (408, 504) else 502
    return Failed(type="engine_overloaded" if status == 503 else "engine_error", status=status,
                  retryable=not after_tokens, message=f"engine error ({err.status}): {err.message}")


def failure_from_response(status: int, body: bytes, *, prompt_param: str = "messages") -> Failed:
    return to_failed(parse_error_body(body, status), prompt_param=prompt_param)


def failure_in_stream(obj: Any, *, after_tokens: bool, prompt_param: str = "messages") -> Failed | None:
    """An error object inside a 200 stream, or None when ``obj`` is an ordinary chunk."""
    err = error_from_object(obj)
    return None if err is None else to_failed(err, prompt_param=prompt_param, after_tokens=after_tokens)


def connection_failure(exc: httpx.TransportError, url: str) -> Failed:
    """Transport errors before any response: the engine is down, starting or restarting; another may serve."""
    if isinstance(exc, httpx.ConnectError):
        why = "connection refused or unreachable (engine starting or restarting?)"
    elif isinstance(exc, httpx.TimeoutException):
        why = f"timed out ({type(exc).__name__})"
    else:
        why = type(exc).__name__
    return Failed(type="engine_unavailable", status=503, retryable=True, message=f"engine at {url}: {why}")


def stream_cut(url: str, *, after_tokens: bool, why: str = "the engine ended the stream without finishing") -> Failed:
    return Failed(type="engine_error", status=502, retryable=not after_tokens, message=f"{why} ({url})")


def _status(code: Any, default: int) -> int:
    return code if isinstance(code, int) and 400 <= code < 600 else default


def _str(value: Any) -> str | None:
    return value if isinstance(value, str) else None
