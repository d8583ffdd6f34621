"""SGLang's server, replicated. Native ``/generate`` streams the *whole text so far* in ``text`` (unless started
with ``--incremental-streaming-output``), cumulative ``meta_info.completion_tokens``, ``finish_reason`` as an
object, errors ``{"error": {"message"}}`` (also inside the stream), then ``[DONE]``. The OpenAI endpoints answer
errors flat (``{"object": "error", ...}``) but nest them inside a stream. Load at ``/v1/loads``."""

from __future__ import annotations

import time
from typing import Any

import msgspec

from backends.events import Completed, Delta, Failed
from backends.protocol import Load
from backends.replicas.asgi import JSON, TEXT
from backends.replicas.dialect import Route
from backends.replicas.openai_wire import DONE, OpenAIWire, WireStream
from backends.replicas.parse import checked_priority, openai_request, sglang_generate_request
from backends.request import GenerationRequest


def flat_error(message: str, status: int, param: str | None = None) -> bytes:
    return msgspec.json.encode({"object": "error", "message": message, "type": "BadRequestError" if status < 500
                                else "InternalServerError", "param": param, "code": status})


def native_error(message: str) -> bytes:
    return msgspec.json.encode({"error": {"message": message}})


class NativeStream:
    def __init__(self, request: GenerationRequest, prompt_tokens: int, incremental: bool) -> None:
        self.rid = request.request_id
        self.prompt_tokens = prompt_tokens
        self.incremental = incremental
        self.text = ""
        self.piece = ""
        self.tokens = 0

    def _chunk(self, finish: dict[str, Any] | None) -> bytes:
        obj = {"text": self.piece if self.incremental else self.text,
               "output_ids": list(range(self.tokens)),
               "meta_info": {"id": self.rid, "finish_reason": finish, "prompt_tokens": self.prompt_tokens,
                             "completion_tokens": self.tokens, "cached_tokens": 0, "e2e_latency": 0.0}}
        return b"data: " + msgspec.json.encode(obj) + b"\n\n"

    def head(self) -> bytes:
        return b""

    def delta(self, d: Delta) -> bytes:
        self.text += d.text
        self.piece = d.text
        self.tokens += d.tokens
        return self._chunk(None)

    def completed(self, c: Completed) -> bytes:
        self.piece = ""
        reason = c.finish_reasons[0] if c.finish_reasons else "stop"
        finish = {"type": "length", "length": self.tokens} if reason == "length" else {"type": "stop", "matched": 2}
        return self._chunk(finish) + DONE

    def failed(self, f: Failed) -> bytes | None:
        return b"data: " + native_error(f.message) + b"\n\n" + DONE

    def full(self, c: Completed) -> bytes:
        reason = c.finish_reasons[0] if c.finish_reasons else "stop"
        return msgspec.json.encode({"text": self.text, "meta_info": {
            "id": self.rid, "finish_reason": {"type": reason}, "prompt_tokens": self.prompt_tokens,
            "completion_tokens": c.completion_tokens}})


class OpenAIStream(WireStream):
    def failed(self, f: Failed) -> bytes | None:
        status = f.status if f.status >= 400 else 500
        err = {"error": {"object": "error", "message": f.message, "type": "InternalServerError", "param": None,
                         "code": status}}
        return b"data: " + msgspec.json.encode(err) + b"\n\n" + DONE


class SglangDialect:
    name = "sglang"

    def __init__(self, model: str, incremental: bool = False) -> None:
        self.model = model
        self.incremental = incremental

    def routes(self) -> dict[tuple[str, str], Route | str]:
        return {("POST", "/generate"): Route("generate"), ("POST", "/v1/chat/completions"): Route("chat"),
                ("POST", "/v1/completions"): Route("completion"), ("GET", "/health"): "health",
                ("GET", "/health_generate"): "health", ("GET", "/ready"): "health", ("GET", "/v1/loads"): "loads",
                ("GET", "/v1/models"): "models", ("GET", "/metrics"): "metrics"}

    def parse(self, route: Route, body: dict[str, Any]) -> GenerationRequest:
        checked_priority(body, integer=True)  # accepted whether or not the engine schedules by it
        if route.kind == "generate":
            return sglang_generate_request(body, self.model)
        return openai_request(body, route.kind == "chat", default_max_tokens=128)

    def renderer(self, route: Route, request: GenerationRequest, body: dict[str, Any],
                 prompt_tokens: int) -> NativeStream | OpenAIStream:
        if route.kind == "generate":
            return NativeStream(request, prompt_tokens, self.incremental)
        opts = body.get("stream_options") or {}
        return OpenAIStream(OpenAIWire(request, self.model, include_usage=bool(opts.get("include_usage")),
                                       continuous_usage=bool(opts.get("continuous_usage_stats")),
                                       prompt_tokens=prompt_tokens))

    def error(self, route: Route, failed: Failed, status: int) -> bytes:
        if route.kind == "generate":
            return native_error(failed.message)
        return flat_error(failed.message, status, failed.param)

    def context_error(self, route: Route, prompt_tokens: int, limit: int) -> tuple[int, bytes]:
        message = (f"The input ({prompt_tokens} tokens) is longer than the model's context length "
                   f"({limit} tokens).")
        return 400, native_error(message) if route.kind == "generate" else flat_error(message, 400)

    def info(self, name: str, load: Load, model: str) -> tuple[int, bytes, bytes]:
        if name == "health":
            return 200, b"", JSON
        if name == "models":
            return 200, msgspec.json.encode({"object": "list", "data": [
                {"id": model, "object": "model", "owned_by": "sglang", "root": model}]}), JSON
        if name == "loads":
            return 200, msgspec.json.encode({
                "timestamp": time.strftime("%Y-%m-%dT%H:%M:%S"), "version": "replica", "dp_rank_count": 1,
                "loads": [{"dp_rank": 0, "num_running_reqs": load.running, "num_waiting_reqs": load.waiting,
                           "num_total_reqs": load.running + load.waiting,
                           "token_usage": load.kv_cache_usage or 0.0}]}), JSON
        body = (f'sglang:num_running_reqs{{model_name="{model}"}} {float(load.running)}\n'
                f'sglang:num_queue_reqs{{model_name="{model}"}} {float(load.waiting)}\n'
                f'sglang:token_usage{{model_name="{model}"}} {float(load.kv_cache_usage or 0.0)}\n')
        return 200, body.encode(), TEXT
