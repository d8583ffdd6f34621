"""bench/engine_usage_cost.py: what each mode asks vLLM for, and how it reads vLLM's own ITL back."""

from __future__ import annotations

import httpx
import pytest

from bench import engine_usage_cost

METRICS = """# HELP vllm:inter_token_latency_seconds Histogram of inter-token latency in seconds.
# TYPE vllm:inter_token_latency_seconds histogram
vllm:inter_token_latency_seconds_bucket{engine="0",le="0.01",model_name="tiny"} 7.0
vllm:inter_token_latency_seconds_sum{engine="0",model_name="tiny"} 0.0125
vllm:inter_token_latency_seconds_count{engine="0",model_name="tiny"} 7.0
vllm:time_to_first_token_seconds_sum{engine="0",model_name="tiny"} 9.5
"""


def test_itl_totals_reads_vllms_histogram_sum_and_count(monkeypatch: pytest.MonkeyPatch) -> None:
    def get(url: str, **_: object) -> httpx.Response:
        assert url == "http://vllm/metrics"
        return httpx.Response(200, text=METRICS)

    monkeypatch.setattr(engine_usage_cost.httpx, "get", get)
    assert engine_usage_cost.itl_totals("http://vllm") == (0.0125, 7.0)


def test_token_ids_differs_from_usage_at_end_by_the_flag_alone() -> None:
    # At c=1 the two are compared for vLLM's ITL: lockgate's adapter sends the flag, a direct client does not.
    ids, ids_headers = engine_usage_cost.MODES["token-ids"]
    end, end_headers = engine_usage_cost.MODES["usage-at-end"]
    assert ids == {**end, "return_token_ids": True}
    assert ids_headers == end_headers == {}
