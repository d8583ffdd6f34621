"""TensorRT-LLM's ``trtllm-serve``, replicated: ``data: {json} \\n\\n`` (a space before the newline), null fields
omitted, unknown request fields refused with 400 ``{"error": "<validation text>"}``, flat errors, and on a
mid-stream exception the connection is cut with no error chunk and no ``[DONE]``. Prometheus gauges at
``/prometheus/metrics``. Also Triton's ``/v2/models/{model}/generate_stream`` and ``/v2/health/ready``."""

from __future__ import annotations

from typing import Any

import msgspec

from backends.events import Completed, Delta, Failed
from backends.protocol import Load
from backends.replicas.asgi import JSON, TEXT
from backends.replicas.dialect import Route
from backends.replicas.openai_wire import OpenAIWire, WireStream
from backends.replicas.parse import checked_priority, openai_request, triton_request
from backends.request import GenerationRequest

_COMMON = frozenset({
    "model", "max_tokens", "temperature", "top_p", "n", "stop", "seed", "user", "stream", "stream_options",
    "logprobs", "presence_penalty", "frequency_penalty", "logit_bias", "response_format", "top_k", "min_p",
    "min_tokens", "ignore_eos", "stop_token_ids", "repetition_penalty", "priority", "include_stop_str_in_output",
    "skip_special_tokens", "spaces_between_special_tokens", "lora_request", "disaggregated_params", "best_of",
    "use_beam_search", "length_penalty", "early_stopping", "truncate_prompt_tokens", "return_context_logits",
    "detokenize", "echo"})
CHAT_FIELDS = _COMMON | {"messages", "max_completion_tokens", "top_logprobs", "tools", "tool_choice",
                         "add_generation_prompt", "chat_template", "chat_template_kwargs", "documents",
                         "add_special_tokens", "reasoning_effort"}
COMPLETION_FIELDS = _COMMON | {"prompt", "suffix", "add_special_tokens"}


def flat_error(message: str, status: int, param: str | None = None) -> bytes:
    return msgspec.json.encode({"object": "error", "message": message, "type": "BadRequestError" if status < 500
                                else "InternalServerError", "param": param, "code": status})


class UnknownFields(ValueError):
    pass


class TrtllmStream(WireStream):
    def failed(self, f: Failed) -> bytes | None:
        return None  # an exception in trtllm-serve's generator ends the response without a word


class TritonStream:
    def __init__(self, model: str) -> None:
        self.model = model
        self.text = ""

    def _data(self, obj: dict[str, Any]) -> bytes:
        return b"data: " + msgspec.json.encode(obj) + b"\n\n"

    def head(self) -> bytes:
        return b""

    def delta(self, d: Delta) -> bytes:
        self.text += d.text
        return self._data({"model_name": self.model, "model_version": "1", "text_output": d.text})

    def completed(self, c: Completed) -> bytes:
        return b""  # Triton ends the stream: no finish chunk, no [DONE]

    def failed(self, f: Failed) -> bytes | None:
        return self._data({"error": f.message})

    def full(self, c: Completed) -> bytes:
        return msgspec.json.encode({"model_name": self.model, "model_version": "1", "text_output": self.text})


class TrtllmDialect:
    name = "trtllm"

    def __init__(self, model: str, triton_model: str = "ensemble") -> None:
        self.model = model
        self.triton_model = triton_model

    def routes(self) -> dict[tuple[str, str], Route | str]:
        return {("POST", "/v1/chat/completions"): Route("chat"), ("POST", "/v1/completions"): Route("completion"),
                ("POST", f"/v2/models/{self.triton_model}/generate_stream"): Route("triton"),
                ("GET", "/health"): "health", ("GET", "/health_generate"): "health",
                ("GET", "/v2/health/ready"): "health", ("GET", "/prometheus/metrics"): "metrics",
                ("GET", "/metrics"): "iteration_stats", ("GET", "/v1/models"): "models",
                ("GET", "/version"): "version"}

    def parse(self, route: Route, body: dict[str, Any]) -> GenerationRequest:
        if route.kind == "triton":
            return triton_request(body, self.triton_model)
        allowed = CHAT_FIELDS if route.kind == "chat" else COMPLETION_FIELDS
        unknown = sorted(set(body) - allowed)
        if unknown:
            name = "ChatCompletionRequest" if route.kind == "chat" else "CompletionRequest"
            lines = [f"{len(unknown)} validation error{'s' if len(unknown) > 1 else ''} for {name}"]
            for field in unknown:
                lines += [field, f"  Extra inputs are not permitted [type=extra_forbidden, input_value="
                                 f"{body[field]!r}, input_type={type(body[field]).__name__}]"]
            raise UnknownFields("\n".join(lines))
        checked_priority(body, integer=False)
        return openai_request(body, route.kind == "chat", default_max_tokens=16)

    def renderer(self, route: Route, request: GenerationRequest, body: dict[str, Any],
                 prompt_tokens: int) -> TrtllmStream | TritonStream:
        if route.kind == "triton":
            return TritonStream(self.triton_model)
        opts = body.get("stream_options") or {}
        return TrtllmStream(OpenAIWire(request, self.model, include_usage=bool(opts.get("include_usage", True)),
                                       continuous_usage=bool(opts.get("continuous_usage_stats")),
                                       omit_nulls=True, line_end=b" \n\n", prompt_tokens=prompt_tokens))

    def error(self, route: Route, failed: Failed, status: int) -> bytes:
        if route.kind == "triton" or failed.type == "RequestValidationError":
            # FastAPI's RequestValidationError handler in trtllm-serve: {"error": str(exc)}
            return msgspec.json.encode({"error": failed.message})
        return flat_error(failed.message, status, failed.param)

    def context_error(self, route: Route, prompt_tokens: int, limit: int) -> tuple[int, bytes]:
        message = (f"The sum of prompt length ({prompt_tokens}), query length (0) should not exceed "
                   f"max_num_tokens ({limit})")
        if route.kind == "triton":
            return 400, msgspec.json.encode({"error": message})
        return 400, flat_error(message, 400)

    def info(self, name: str, load: Load, model: str) -> tuple[int, bytes, bytes]:
        if name == "health":
            return 200, b"", JSON
        if name == "version":
            return 200, b'{"version":"replica"}', JSON
        if name == "iteration_stats":
            return 200, b"[]", JSON  # removed once read; lockgate reads Prometheus instead
        if name == "models":
            return 200, msgspec.json.encode({"object": "list", "data": [
                {"id": model, "object": "model", "owned_by": "tensorrt_llm"}]}), JSON
        body = (f"trtllm_num_requests_running {float(load.running)}\n"
                f"trtllm_num_requests_waiting {float(load.waiting)}\n"
                f"trtllm_kv_cache_utilization {float(load.kv_cache_usage or 0.0)}\n")
        return 200, body.encode(), TEXT
