"""lockgate's vllm adapter, through the gateway, against a real vLLM server (CPU build, tiny random Llama).

Greedy decoding with ``ignore_eos`` fixes output lengths, so every answer can be compared with what vLLM itself
returns for the same request.
"""

from __future__ import annotations

import asyncio
import threading
import time
from typing import Any

import httpx
import msgspec
import openai
import pytest

from backends.http.prometheus import parse_samples, total
from gateway.runtime import Runtime

# The session fixture may build the engine's virtualenv and model first (minutes on a fresh 2-core machine).
pytestmark = pytest.mark.timeout(1800)

PROMPT = "the quick brown fox jumps over a lazy dog"


def client(url: str) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{url}/v1", api_key="unused", max_retries=0, timeout=120)


def engine_metric(vllm_url: str, name: str, labels: dict[str, str] | None = None) -> float:
    """A value straight from vLLM's own /metrics."""
    samples = parse_samples(httpx.get(f"{vllm_url}/metrics", timeout=5).text)
    return total(samples, [name], labels) or 0.0


def test_streamed_chat_matches_vllm_text_and_usage(vllm_server: Any, gateway: tuple[str, Runtime]) -> None:
    url, _ = gateway
    messages = [{"role": "user", "content": PROMPT}]
    kw: dict[str, Any] = {"max_tokens": 12, "temperature": 0, "extra_body": {"ignore_eos": True}}
    stream = client(url).chat.completions.create(model="tiny", messages=messages, stream=True,  # type: ignore[arg-type]
                                                 stream_options={"include_usage": True}, **kw)
    text, usage, finish = "", None, None
    for chunk in stream:
        if chunk.usage is not None:
            usage = chunk.usage
        for choice in chunk.choices:
            text += choice.delta.content or ""
            finish = choice.finish_reason or finish
    direct = client(vllm_server.url).chat.completions.create(model=vllm_server.model, messages=messages, **kw)  # type: ignore[arg-type]
    assert direct.usage is not None
    assert usage is not None
    assert (usage.prompt_tokens, usage.completion_tokens) == (direct.usage.prompt_tokens, 12)
    assert direct.usage.completion_tokens == 12
    assert finish == "length"
    assert text == direct.choices[0].message.content


def test_non_streamed_chat_usage_equals_vllms(vllm_server: Any, gateway: tuple[str, Runtime]) -> None:
    url, _ = gateway
    messages = [{"role": "system", "content": "be brief"}, {"role": "user", "content": PROMPT}]
    kw: dict[str, Any] = {"max_tokens": 7, "temperature": 0, "extra_body": {"ignore_eos": True}}
    ours = client(url).chat.completions.create(model="tiny", messages=messages, **kw)  # type: ignore[arg-type]
    theirs = client(vllm_server.url).chat.completions.create(model=vllm_server.model, messages=messages,  # type: ignore[arg-type]
                                                              **kw)
    assert ours.usage is not None
    assert theirs.usage is not None
    assert (ours.usage.prompt_tokens, ours.usage.completion_tokens) == (
        theirs.usage.prompt_tokens, theirs.usage.completion_tokens)
    assert ours.choices[0].message.content == theirs.choices[0].message.content
    assert ours.choices[0].finish_reason == "length"


def test_completions_streamed_and_not_match_vllm(vllm_server: Any, gateway: tuple[str, Runtime]) -> None:
    url, _ = gateway
    kw: dict[str, Any] = {"max_tokens": 9, "temperature": 0, "extra_body": {"ignore_eos": True}}
    theirs = client(vllm_server.url).completions.create(model=vllm_server.model, prompt=PROMPT, **kw)
    ours = client(url).completions.create(model="tiny", prompt=PROMPT, **kw)
    assert ours.usage is not None
    assert theirs.usage is not None
    assert ours.usage.model_dump() == theirs.usage.model_dump() | {
        k: v for k, v in ours.usage.model_dump().items() if k not in ("prompt_tokens", "completion_tokens",
                                                                     "total_tokens")}
    assert ours.choices[0].text == theirs.choices[0].text
    text = "".join(c.choices[0].text for c in client(url).completions.create(
        model="tiny", prompt=PROMPT, stream=True, **kw) if c.choices)
    assert text == theirs.choices[0].text


def test_context_overflow_is_400_context_length_exceeded(gateway: tuple[str, Runtime]) -> None:
    url, _ = gateway
    with pytest.raises(openai.BadRequestError) as info:
        client(url).completions.create(model="tiny", prompt="the quick fox " * 200, max_tokens=4)
    err = info.value
    assert err.status_code == 400
    assert err.code == "context_length_exceeded"
    assert "512" in err.message


def test_client_disconnect_mid_stream_cancels_the_job(vllm_server: Any, gateway: tuple[str, Runtime]) -> None:
    url, runtime = gateway
    # Four streams of n=8 x 480 tokens keep the engine busy while every client leaves after its first chunk.
    body = {"model": "tiny", "prompt": PROMPT, "max_tokens": 480, "n": 8, "stream": True, "ignore_eos": True}
    streams = 4

    def leave_after_first_chunk() -> None:
        with httpx.stream("POST", f"{url}/v1/completions", json=body, timeout=120) as resp:
            assert resp.status_code == 200
            for line in resp.iter_lines():
                if line.startswith("data: {"):
                    break

    clients = [threading.Thread(target=leave_after_first_chunk) for _ in range(streams)]
    for c in clients:
        c.start()
    for c in clients:
        c.join(timeout=120)
    # The client closed the connection: the gateway cancels the job ...
    left = time.monotonic()
    while runtime.dispatcher.running("vllm-cpu") != 0:
        assert time.monotonic() - left < 3, "the gateway did not cancel the job within 3 s of the disconnect"
        time.sleep(0.01)
    # ... the adapter closes its engine stream, and vLLM aborts the request: its running gauge returns to 0 ...
    deadline = time.monotonic() + 10
    while engine_metric(vllm_server.url, "vllm:num_requests_running") != 0:
        assert time.monotonic() < deadline, "vLLM still running the request 10 s after the client left"
        time.sleep(0.1)
    # Not asserted: that vLLM aborts the request once the adapter closes its stream. In full-suite runs vLLM
    # sometimes generated every token after the gateway had cancelled all jobs, while the same test run alone
    # saw most requests aborted: an open defect of the engine-side abort (issue 4), not proven here.


def test_health_and_load_come_from_vllms_own_endpoints(vllm_server: Any, gateway: tuple[str, Runtime]) -> None:
    url, runtime = gateway
    backend = runtime.backends["vllm-cpu"]
    # health() and load() answer from the adapter's poller (every 0.2 s here), which reads vLLM's /health
    # and /metrics; they do no I/O themselves, so they can be read from this thread.
    deadline = time.monotonic() + 5
    while (load := asyncio.run(backend.load())) is None or load.running != 0:  # an earlier test's abort settles
        assert time.monotonic() < deadline, f"load never went back to idle: {load}"
        time.sleep(0.05)
    assert asyncio.run(backend.health()).ok
    assert load.waiting == engine_metric(vllm_server.url, "vllm:num_requests_waiting")
    assert load.kv_cache_usage == engine_metric(vllm_server.url, "vllm:kv_cache_usage_perc")
    assert load.kv_cache_usage is not None
    ready = msgspec.json.decode(httpx.get(f"{url}/readyz", timeout=5).content)
    assert ready["backends"] == {"vllm-cpu": "ok"}
