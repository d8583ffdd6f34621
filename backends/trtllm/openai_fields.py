"""What ``trtllm-serve`` accepts: it answers 400 to any field it does not know, so lockgate sends only these."""

from __future__ import annotations

from typing import Any

from backends.http.openai import openai_call
from backends.http.priority import trtllm_priority
from backends.http.translate import EngineCall
from backends.request import GenerationRequest

ACCEPTED_EXTRAS = ("top_k", "min_p", "min_tokens", "ignore_eos", "stop_token_ids", "repetition_penalty",
                   "presence_penalty", "frequency_penalty")


def openai_request(request: GenerationRequest, model: str, levels: int) -> EngineCall:
    call = openai_call(request, model, extras=ACCEPTED_EXTRAS, continuous_usage=True)
    body: dict[str, Any] = dict(call.body)
    if request.priority != 0:  # 0.5, the engine's own default, is not sent
        body["priority"] = trtllm_priority(request.priority, levels)
    return EngineCall(path=call.path, body=body, prompt_param=call.prompt_param,
                      headers={"x-request-id": request.request_id})
