"""vLLM's OpenAI server, replicated: nested errors (HTTP status = ``code``), role-only first chat chunk, usage on
every chunk with ``continuous_usage_stats``, a ``choices: []`` usage chunk with ``include_usage``, the token-id
fields of vLLM 0.32 (nulls, or each delta's ids with ``return_token_ids``), an error chunk
then ``[DONE]`` on a mid-stream failure, and ``/metrics`` gauges labelled ``engine`` and ``model_name``."""

from __future__ import annotations

from typing import Any

import msgspec

from backends.events import Failed
from backends.protocol import Load
from backends.replicas.asgi import JSON, TEXT
from backends.replicas.dialect import Route
from backends.replicas.openai_wire import DONE, OpenAIWire, WireStream
from backends.replicas.parse import BadRequest, checked_priority, openai_request
from backends.request import GenerationRequest

_TYPES = {400: "BadRequestError", 404: "NotFoundError", 500: "InternalServerError", 503: "ServiceUnavailableError"}


def nested_error(message: str, status: int, param: str | None = None) -> bytes:
    return msgspec.json.encode({"error": {"message": message, "type": _TYPES.get(status, "InternalServerError"),
                                          "param": param, "code": status}})


class VllmStream(WireStream):
    def failed(self, f: Failed) -> bytes | None:
        return b"data: " + nested_error(f.message, f.status if f.status >= 400 else 500) + b"\n\n" + DONE


class VllmDialect:
    name = "vllm"

    def __init__(self, model: str) -> None:
        self.model = model

    def routes(self) -> dict[tuple[str, str], Route | str]:
        return {("POST", "/v1/chat/completions"): Route("chat"), ("POST", "/v1/completions"): Route("completion"),
                ("GET", "/health"): "health", ("GET", "/metrics"): "metrics", ("GET", "/v1/models"): "models",
                ("GET", "/version"): "version"}

    def parse(self, route: Route, body: dict[str, Any]) -> GenerationRequest:
        if body.get("model") not in (None, self.model):
            raise BadRequest(f"The model `{body.get('model')}` does not exist.", "model", status=404)
        # vLLM 0.32 takes any int priority, with or without --scheduling-policy priority (only that policy acts
        # on it); its V0 engine refused a non-zero one without the policy. A non-integer is a 400 either way.
        checked_priority(body, integer=True)
        return openai_request(body, route.kind == "chat", default_max_tokens=16)

    def renderer(self, route: Route, request: GenerationRequest, body: dict[str, Any],
                 prompt_tokens: int) -> VllmStream:
        opts = body.get("stream_options") or {}
        return VllmStream(OpenAIWire(request, self.model, include_usage=bool(opts.get("include_usage")),
                                     continuous_usage=bool(opts.get("continuous_usage_stats")),
                                     prompt_tokens=prompt_tokens, token_ids=bool(body.get("return_token_ids"))))

    def error(self, route: Route, failed: Failed, status: int) -> bytes:
        return nested_error(failed.message, status, failed.param)

    def context_error(self, route: Route, prompt_tokens: int, limit: int) -> tuple[int, bytes]:
        return 400, nested_error(
            f"This model's maximum context length is {limit} tokens. However, your request has {prompt_tokens} "
            f"input tokens. Please reduce the length of the input messages.", 400)

    def info(self, name: str, load: Load, model: str) -> tuple[int, bytes, bytes]:
        if name == "health":
            return 200, b"", JSON
        if name == "version":
            return 200, b'{"version":"replica"}', JSON
        if name == "models":
            return 200, msgspec.json.encode({"object": "list", "data": [
                {"id": model, "object": "model", "owned_by": "vllm", "root": model, "max_model_len": None}]}), JSON
        labels = f'engine="0",model_name="{model}"'
        lines = []
        for metric, value in (("vllm:num_requests_running", load.running), ("vllm:num_requests_waiting",
                              load.waiting), ("vllm:kv_cache_usage_perc", load.kv_cache_usage or 0.0)):
            lines += [f"# HELP {metric} replica gauge", f"# TYPE {metric} gauge",
                      f"{metric}{{{labels}}} {float(value)}"]
        return 200, ("\n".join(lines) + "\n").encode(), TEXT

