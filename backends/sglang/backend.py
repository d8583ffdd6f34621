"""The ``sglang`` adapter. Health from ``/health`` (or ``/health_generate``), load from ``/v1/loads``, or from
``/metrics`` gauges where ``/v1/loads`` fails."""

from __future__ import annotations

from typing import Any

from backends.http.base import HttpBackend
from backends.http.openai import OpenAIChunks, openai_call
from backends.http.priority import sglang_priority
from backends.http.prometheus import Sample, parse_samples, total, values
from backends.http.translate import EngineCall, Translator
from backends.protocol import Health, Load
from backends.request import GenerationRequest
from backends.sglang.native import NativeChunks, generate_call
from backends.sglang.options import SglangOptions

# SGLang 0.5.15 with --enable-metrics answers 500 on /v1/loads (its HTTP-metrics middleware fails on that route:
# seen on the GPU bake-off): then /metrics serves the load, and /v1/loads is asked again only every this many polls.
LOADS_RETRY_POLLS = 30


class SglangBackend(HttpBackend):
    engine = "sglang"
    options: SglangOptions
    _loads_skip: int = 0

    def _native(self, request: GenerationRequest) -> bool:
        # Native /generate takes text, not messages, and streams n > 1 as a batch: those go to /v1.
        return self.options.protocol == "native" and request.operation == "text_completion" and request.n == 1

    def _priority(self, request: GenerationRequest) -> dict[str, int]:
        if not self.options.priority_scheduling:
            return {}
        return {"priority": sglang_priority(request.priority, low_values_first=self.options.low_priority_values_first)}

    def build_call(self, request: GenerationRequest) -> EngineCall:
        priority = self._priority(request)
        if self._native(request):
            return generate_call(request, priority.get("priority"))
        call = openai_call(request, self.model_name(request), extras=None,
                           continuous_usage=self.options.continuous_usage)
        return EngineCall(path=call.path, body={**call.body, "rid": request.request_id, **priority},
                          prompt_param=call.prompt_param)

    def translator(self, request: GenerationRequest) -> Translator:
        if self._native(request):
            return NativeChunks(self.options.incremental_output)
        return OpenAIChunks(request)

    async def probe_health(self) -> Health:
        # SGLang answers 503 while it warms up: that is starting, not down.
        return await self.http_health(self.options.health_path, starting_on_503=True)

    async def probe_load(self) -> Load | None:
        if self._loads_skip == 0:
            resp = await self.get("/v1/loads")
            if resp.status_code == 200:
                return loads_to_load(resp.json())
            self._loads_skip = LOADS_RETRY_POLLS
        else:
            self._loads_skip -= 1
        resp = await self.get("/metrics")  # served with --enable-metrics only
        if resp.status_code != 200:
            return None
        return metrics_to_load(parse_samples(resp.text), self.options.model)


def loads_to_load(body: Any) -> Load | None:
    """``/v1/loads`` reports per data-parallel rank; the engine's load is their sum (usage: their mean)."""
    ranks = body.get("loads", body) if isinstance(body, dict) else body
    if isinstance(ranks, dict):
        ranks = [ranks]
    if not isinstance(ranks, list) or not ranks:
        return None
    running = sum(int(r.get("num_running_reqs", 0) or 0) for r in ranks if isinstance(r, dict))
    waiting = sum(int(r.get("num_waiting_reqs", 0) or 0) for r in ranks if isinstance(r, dict))
    usage = [float(r["token_usage"]) for r in ranks if isinstance(r, dict) and r.get("token_usage") is not None]
    return Load(waiting=waiting, running=running, kv_cache_usage=sum(usage) / len(usage) if usage else None)


def metrics_to_load(samples: list[Sample], model: str | None) -> Load | None:
    """SGLang's gauges, summed over ranks (token usage: their mean), for this model when it is labelled."""
    match = {"model_name": model} if model else None
    running = total(samples, ("sglang:num_running_reqs",), match)
    waiting = total(samples, ("sglang:num_queue_reqs",), match)
    if running is None and waiting is None:
        return None
    usage = values(samples, "sglang:token_usage", match)
    return Load(waiting=int(waiting or 0), running=int(running or 0),
                kv_cache_usage=sum(usage) / len(usage) if usage else None)
