"""The ``vllm`` adapter: ``/v1/chat/completions`` and ``/v1/completions``, health from ``/health``, load from
``/metrics`` (``vllm:num_requests_running``/``waiting``, ``vllm:kv_cache_usage_perc``)."""

from __future__ import annotations

from backends.http.base import HttpBackend
from backends.http.openai import OpenAIChunks, openai_call
from backends.http.priority import vllm_priority
from backends.http.prometheus import parse_samples, total
from backends.http.translate import EngineCall, Translator
from backends.protocol import Health, Load
from backends.request import GenerationRequest
from backends.vllm.options import VllmOptions

RUNNING = ("vllm:num_requests_running",)
WAITING = ("vllm:num_requests_waiting",)
# Renamed from gpu_cache_usage_perc in vLLM's V1 engine; the old name is still read for older servers.
KV_USAGE = ("vllm:kv_cache_usage_perc", "vllm:gpu_cache_usage_perc")


class VllmBackend(HttpBackend):
    engine = "vllm"
    options: VllmOptions

    def build_call(self, request: GenerationRequest) -> EngineCall:
        call = openai_call(request, self.model_name(request), extras=None,
                           continuous_usage=self.options.continuous_usage)
        body = dict(call.body)
        if self.options.priority_scheduling:
            body["priority"] = vllm_priority(request.priority)
        if self.options.token_ids:
            body["return_token_ids"] = True
        # X-Request-Id wins over the body's request_id in vLLM, and it is echoed back with
        # --enable-request-id-headers: one id from the client to the engine's logs.
        return EngineCall(path=call.path, body=body, prompt_param=call.prompt_param,
                          headers={"x-request-id": request.request_id})

    def translator(self, request: GenerationRequest) -> Translator:
        return OpenAIChunks(request)

    async def probe_health(self) -> Health:
        return await self.http_health("/health")

    async def probe_load(self) -> Load | None:
        resp = await self.get("/metrics")
        if resp.status_code != 200:
            return None
        samples = parse_samples(resp.text)
        match = {"model_name": self.options.model} if self.options.metrics_model_label and self.options.model \
            else None
        running = total(samples, RUNNING, match)
        waiting = total(samples, WAITING, match)
        if running is None and waiting is None:
            return None
        kv = total(samples, KV_USAGE, match)
        return Load(waiting=int(waiting or 0), running=int(running or 0), kv_cache_usage=kv)
