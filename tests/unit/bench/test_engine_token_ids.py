"""bench/engine_token_ids.py: what it sends and what it reads, against a stand-in vLLM (httpx.MockTransport)."""

from __future__ import annotations

import json

import httpx
import pytest

from bench.engine_token_ids import itl_totals, one

METRICS = """# HELP vllm:inter_token_latency_seconds Histogram of inter-token latency in seconds.
# TYPE vllm:inter_token_latency_seconds histogram
vllm:inter_token_latency_seconds_bucket{engine="0",le="0.01",model_name="tiny"} 7.0
vllm:inter_token_latency_seconds_sum{engine="0",model_name="tiny"} 0.0125
vllm:inter_token_latency_seconds_count{engine="0",model_name="tiny"} 7.0
vllm:time_to_first_token_seconds_sum{engine="0",model_name="tiny"} 9.5
"""


def stand_in(bodies: list[dict[str, object]]) -> httpx.MockTransport:
    def handle(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/metrics":
            return httpx.Response(200, text=METRICS)
        bodies.append(json.loads(request.content))
        chunks = [{"choices": [{"text": t}]} for t in ("a", "b", "", "c")]
        sse = "".join(f"data: {json.dumps(c)}\n\n" for c in chunks) + "data: [DONE]\n\n"
        return httpx.Response(200, text=sse, headers={"content-type": "text/event-stream"})

    return httpx.MockTransport(handle)


@pytest.mark.anyio
@pytest.mark.parametrize("token_ids", [False, True])
async def test_one_asks_for_token_ids_only_when_told_and_times_the_text_chunks(token_ids: bool) -> None:
    bodies: list[dict[str, object]] = []
    async with httpx.AsyncClient(transport=stand_in(bodies)) as client:
        gaps = await one(client, "http://vllm", "tiny", 8, token_ids)
    assert len(gaps) == 2  # three chunks with text; the empty one is not a token
    assert all(g >= 0 for g in gaps)
    assert bodies[0].get("return_token_ids", False) is token_ids
    assert (bodies[0]["max_tokens"], bodies[0]["ignore_eos"], bodies[0]["stream"]) == (8, True, True)


@pytest.mark.anyio
async def test_itl_totals_reads_vllms_histogram_sum_and_count() -> None:
    async with httpx.AsyncClient(transport=stand_in([])) as client:
        assert await itl_totals(client, "http://vllm") == (0.0125, 7.0)
