"""The official openai SDK, sync and async, works unchanged against lockgate."""

from __future__ import annotations

import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import httpx
import openai
import pytest

from gateway.auth import hash_key
from tests.support.configs import sim_config
from tests.support.live import LiveServer

KEY = "sk-test-0123456789abcdef"


@pytest.fixture
def authed() -> Iterator[LiveServer]:
    config = sim_config(
        backends={"sim": {"ttft_ms": 2, "tpot_ms": 1, "eos_min_tokens": 8, "eos_max_tokens": 8}},
        auth_keys=[("team-a", hash_key(KEY))],
        limits={"max_n": 4},
    )
    with LiveServer(config) as server:
        yield server


def client(server: LiveServer, key: str = KEY) -> openai.OpenAI:
    return openai.OpenAI(base_url=server.url + "/v1", api_key=key, max_retries=0)


def test_models_list_and_retrieve(authed: LiveServer) -> None:
    c = client(authed)
    models = c.models.list()
    assert [m.id for m in models.data] == ["sim-small"]
    assert models.data[0].object == "model"
    assert c.models.retrieve("sim-small").id == "sim-small"
    with pytest.raises(openai.NotFoundError) as err:
        c.models.retrieve("nope")
    assert err.value.code == "model_not_found"


def test_chat_non_streaming_shape_and_usage(authed: LiveServer) -> None:
    resp = client(authed).chat.completions.create(
        model="sim-small", messages=[{"role": "user", "content": "tell me a story"}], max_tokens=5)
    assert resp.id.startswith("chatcmpl-")
    assert resp.object == "chat.completion"
    assert resp.model == "sim-small"
    assert resp.choices[0].message.role == "assistant"
    assert resp.choices[0].finish_reason == "length"
    assert len(resp.choices[0].message.content.split()) == 5
    assert resp.usage is not None
    assert resp.usage.completion_tokens == 5
    assert resp.usage.total_tokens == resp.usage.prompt_tokens + 5


def test_chat_is_deterministic_and_matches_stream(authed: LiveServer) -> None:
    c = client(authed)
    args = {"model": "sim-small", "messages": [{"role": "user", "content": "same prompt"}], "max_tokens": 6,
            "seed": 7}
    whole = c.chat.completions.create(**args).choices[0].message.content
    assert c.chat.completions.create(**args).choices[0].message.content == whole
    streamed = "".join(ch.choices[0].delta.content or "" for ch in c.chat.completions.create(**args, stream=True)
                       if ch.choices)
    assert streamed == whole


def test_chat_stream_without_usage(authed: LiveServer) -> None:
    chunks = list(client(authed).chat.completions.create(
        model="sim-small", messages=[{"role": "user", "content": "hi"}], max_tokens=4, stream=True))
    assert chunks[0].choices[0].delta.role == "assistant"
    assert not chunks[0].choices[0].delta.content
    finishes = [ch for ch in chunks if ch.choices and ch.choices[0].finish_reason]
    assert len(finishes) == 1
    assert finishes[0] is chunks[-1]
    assert all(ch.usage is None for ch in chunks)
    assert sum(1 for ch in chunks if ch.choices and ch.choices[0].delta.content) == 4
    assert len({ch.id for ch in chunks}) == 1


def test_chat_stream_with_usage(authed: LiveServer) -> None:
    chunks = list(client(authed).chat.completions.create(
        model="sim-small", messages=[{"role": "user", "content": "hi"}], max_tokens=4, stream=True,
        stream_options={"include_usage": True}))
    assert chunks[-1].choices == []
    assert chunks[-1].usage is not None
    assert chunks[-1].usage.completion_tokens == 4
    assert all(ch.usage is None for ch in chunks[:-1])
    assert chunks[-2].choices[0].finish_reason == "length"


def test_completions_stream_and_non_stream(authed: LiveServer) -> None:
    c = client(authed)
    resp = c.completions.create(model="sim-small", prompt="Once upon a time", max_tokens=3)
    assert resp.object == "text_completion"
    assert resp.id.startswith("cmpl-")
    assert resp.usage is not None
    assert resp.usage.prompt_tokens == 4
    text = "".join(ch.choices[0].text for ch in c.completions.create(
        model="sim-small", prompt="Once upon a time", max_tokens=3, stream=True) if ch.choices)
    assert text == resp.choices[0].text


def test_stop_sequence_and_n(authed: LiveServer) -> None:
    c = client(authed)
    base = c.completions.create(model="sim-small", prompt="stop test", max_tokens=8).choices[0].text
    third_word = base.split()[2]
    stopped = c.completions.create(model="sim-small", prompt="stop test", max_tokens=8, stop=[" " + third_word])
    assert stopped.choices[0].finish_reason == "stop"
    assert base.startswith(stopped.choices[0].text)
    assert third_word not in stopped.choices[0].text.split()[2:]
    multi = c.chat.completions.create(model="sim-small", messages=[{"role": "user", "content": "n"}], n=3,
                                      max_tokens=3)
    assert [ch.index for ch in multi.choices] == [0, 1, 2]
    assert multi.usage is not None
    assert multi.usage.completion_tokens == 9


def test_engine_extras_pass_through(authed: LiveServer) -> None:
    # The simulator ends naturally after 8 tokens; ignore_eos makes it run to max_tokens.
    c = client(authed)
    natural = c.completions.create(model="sim-small", prompt="extras", max_tokens=20)
    assert natural.usage is not None
    assert natural.usage.completion_tokens == 8
    assert natural.choices[0].finish_reason == "stop"
    forced = c.completions.create(model="sim-small", prompt="extras", max_tokens=20,
                                  extra_body={"ignore_eos": True, "top_k": 5})
    assert forced.usage is not None
    assert forced.usage.completion_tokens == 20
    longer = c.completions.create(model="sim-small", prompt="extras", max_tokens=20, extra_body={"min_tokens": 12})
    assert longer.usage is not None
    assert longer.usage.completion_tokens == 12


def test_errors_map_to_sdk_exceptions(authed: LiveServer) -> None:
    c = client(authed)
    with pytest.raises(openai.AuthenticationError):
        client(authed, key=KEY[:-1] + "X").models.list()
    with pytest.raises(openai.NotFoundError) as nf:
        c.chat.completions.create(model="missing", messages=[{"role": "user", "content": "x"}])
    assert nf.value.code == "model_not_found"
    with pytest.raises(openai.BadRequestError) as br:
        c.chat.completions.create(model="sim-small", messages=[{"role": "user", "content": "x"}], max_tokens=0)
    assert br.value.param == "max_tokens"
    with pytest.raises(openai.BadRequestError) as br_n:
        c.chat.completions.create(model="sim-small", messages=[{"role": "user", "content": "x"}], n=5)
    assert br_n.value.param == "n"


def test_rate_limit_error_with_retry_after() -> None:
    config = sim_config(backends={"slow": {"ttft_ms": 2000, "batch_capacity": 1}},
                        limits={"max_queue_depth": 1, "retry_after_s": 2})
    with LiveServer(config) as server:
        c = openai.OpenAI(base_url=server.url + "/v1", api_key="x", max_retries=0, timeout=10)
        body = {"model": "sim-small", "messages": [{"role": "user", "content": "x"}], "max_tokens": 2}
        dispatcher = server.runtime.dispatcher
        with ThreadPoolExecutor(2) as pool:
            # One request runs (capacity 1), then one waits in the queue (depth 1): the third is refused at
            # once. Sent one after the other: two arriving together could both find the first still queued.
            held = [pool.submit(httpx.post, server.url + "/v1/chat/completions", json=body, timeout=10)]
            assert server.wait_for(lambda: dispatcher.running("slow") == 1)
            held.append(pool.submit(httpx.post, server.url + "/v1/chat/completions", json=body, timeout=10))
            assert server.wait_for(lambda: dispatcher.queued("slow") == 1)
            t0 = time.monotonic()
            with pytest.raises(openai.RateLimitError) as err:
                c.chat.completions.create(model="sim-small", messages=[{"role": "user", "content": "x"}])
            assert time.monotonic() - t0 < 1.0
            assert err.value.response.headers["retry-after"] == "2"
            assert err.value.code == "rate_limit_exceeded"
            assert [f.result().status_code for f in held] == [200, 200]


@pytest.mark.anyio
async def test_async_sdk(authed: LiveServer) -> None:
    c = openai.AsyncOpenAI(base_url=authed.url + "/v1", api_key=KEY, max_retries=0)
    models = await c.models.list()
    assert models.data[0].id == "sim-small"
    resp = await c.chat.completions.create(model="sim-small", messages=[{"role": "user", "content": "a"}],
                                           max_tokens=3)
    assert resp.usage is not None
    assert resp.usage.completion_tokens == 3
    stream = await c.chat.completions.create(model="sim-small", messages=[{"role": "user", "content": "a"}],
                                             max_tokens=3, stream=True, stream_options={"include_usage": True})
    chunks = [ch async for ch in stream]
    assert "".join(ch.choices[0].delta.content or "" for ch in chunks if ch.choices) == \
        resp.choices[0].message.content
    assert chunks[-1].usage is not None
    with pytest.raises(openai.NotFoundError):
        await c.completions.create(model="zzz", prompt="x")
    async with openai.AsyncOpenAI(base_url=authed.url + "/v1", api_key="wrong", max_retries=0) as wrong:
        with pytest.raises(openai.AuthenticationError):
            await wrong.models.list()
    await c.close()
