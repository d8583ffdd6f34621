"""What ``trtllm-serve`` accepts: it answers 400 to any field it does not know, so lockgate sends only these."""

from __future__ import annotations

from typing import Any

from backends.http.openai import openai_call
from backends.http.translate import EngineCall
from backends.request import GenerationRequest

ACCEPTED_EXTRAS = ("top_k", "min_p", "min_tokens", "ignore_eos", "stop_token_ids", "repetition_penalty",
                   "presence_penalty", "frequency_penalty")


def trtllm_priority(priority: int, levels: int) -> float:
    """lockgate: an int, higher first, 0 neutral. TensorRT-LLM: a float in [0, 1], higher first, 0.5 neutral."""
    return min(1.0, max(0.0, 0.5 + priority / (2 * levels)))


def openai_request(request: GenerationRequest, model: str, levels: int) -> EngineCall:
    call = openai_call(request, model, extras=ACCEPTED_EXTRAS, continuous_usage=True)
    body: dict[str, Any] = dict(call.body)
    priority = request.extra.get("priority")
    if isinstance(priority, int) and priority != 0:
        body["priority"] = trtllm_priority(priority, levels)
    return EngineCall(path=call.path, body=body, prompt_param=call.prompt_param,
                      headers={"x-request-id": request.request_id})
