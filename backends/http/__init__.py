"""Shared pieces of the HTTP engine adapters (vLLM, SGLang, TensorRT-LLM): SSE, errors, pooling, polling."""

from backends.http.base import HttpBackend
from backends.http.errors import connection_failure, failure_from_response, failure_in_stream
from backends.http.options import HttpOptions
from backends.http.sse import SSEDecoder, SSEEvent, aiter_sse

__all__ = [
    "HttpBackend",
    "HttpOptions",
    "SSEDecoder",
    "SSEEvent",
    "aiter_sse",
    "connection_failure",
    "failure_from_response",
    "failure_in_stream",
]
