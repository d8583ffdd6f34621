"""The ``trtllm`` adapter. Health from ``/health`` (Triton: ``/v2/health/ready``), load from the Prometheus
endpoint (``trtllm_num_requests_running``/``waiting``, ``trtllm_kv_cache_utilization``; names vary by version)."""

from __future__ import annotations

from backends.http.base import HttpBackend
from backends.http.openai import OpenAIChunks
from backends.http.prometheus import parse_samples, total
from backends.http.translate import EngineCall, Translator
from backends.protocol import Health, Load
from backends.request import GenerationRequest
from backends.trtllm.openai_fields import openai_request
from backends.trtllm.options import TrtllmOptions
from backends.trtllm.triton import TritonChunks, triton_call

RUNNING = ("trtllm_num_requests_running", "trtllm:num_requests_running", "num_requests_running")
WAITING = ("trtllm_num_requests_waiting", "trtllm:num_requests_waiting", "num_requests_waiting")
KV_USAGE = ("trtllm_kv_cache_utilization", "trtllm:kv_cache_utilization", "kv_cache_utilization")


class TrtllmBackend(HttpBackend):
    engine = "tensorrt_llm"
    options: TrtllmOptions

    def build_call(self, request: GenerationRequest) -> EngineCall:
        if self.options.protocol == "triton":
            return triton_call(request, self.options.triton_model)
        return openai_request(request, self.model_name(request), self.options.priority_levels)

    def translator(self, request: GenerationRequest) -> Translator:
        if self.options.protocol == "triton":
            return TritonChunks(request.max_tokens)
        return OpenAIChunks(request)

    async def probe_health(self) -> Health:
        return await self.http_health("/v2/health/ready" if self.options.protocol == "triton" else "/health")

    async def probe_load(self) -> Load | None:
        if self.options.protocol == "triton":
            return None
        resp = await self.get(self.options.metrics_path)
        if resp.status_code != 200:
            return None
        samples = parse_samples(resp.text)
        running, waiting = total(samples, RUNNING), total(samples, WAITING)
        if running is None and waiting is None:
            return None
        return Load(waiting=int(waiting or 0), running=int(running or 0), kv_cache_usage=total(samples, KV_USAGE))
