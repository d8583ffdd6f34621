"""GET /metrics after known traffic: counts, sums and bucket placement match what was sent."""

from __future__ import annotations

import httpx
import pytest
from msgspec.structs import replace
from prometheus_client.parser import text_string_to_metric_families

from gateway.config.schema import TelemetryConfig
from observability.exporters import TelemetryConfigError, effective
from tests.support.configs import sim_config
from tests.support.live import LiveServer

N = 12


def scrape(url: str) -> dict[str, list[tuple[str, dict[str, str], float]]]:
    resp = httpx.get(url + "/metrics")
    assert resp.status_code == 200
    assert resp.headers["content-type"].startswith("text/plain")
    out: dict[str, list[tuple[str, dict[str, str], float]]] = {}
    for family in text_string_to_metric_families(resp.text):
        out[family.name] = [(s.name, s.labels, s.value) for s in family.samples]
    return out


def test_metrics_match_known_traffic() -> None:
    # TTFT 120 ms lands between the 0.1 and 0.25 buckets; 6 tokens 10 ms apart -> TPOT 10 ms.
    config = sim_config(backends={"sim": {"ttft_ms": 120, "tpot_ms": 10}}, routing={"health_interval_s": 0.05})
    with LiveServer(config) as server:
        for i in range(N):
            resp = httpx.post(server.url + "/v1/chat/completions", json={
                "model": "sim-small", "messages": [{"role": "user", "content": f"m{i}"}], "max_tokens": 6,
                "ignore_eos": True, "stream": i % 2 == 0})
            assert resp.status_code == 200
            assert 100 <= float(resp.headers["x-lockgate-ttft-ms"]) < 250
            assert float(resp.headers["x-lockgate-queue-ms"]) < 50
        httpx.post(server.url + "/v1/chat/completions", json={"model": "sim-small", "messages": []})
        families = scrape(server.url)

    def samples(family: str, suffix: str) -> list[tuple[dict[str, str], float]]:
        return [(labels, v) for name, labels, v in families[family] if name == family + suffix]

    ttft = "gen_ai_server_time_to_first_token_seconds"
    (count,) = samples(ttft, "_count")
    assert count[1] == N
    assert count[0]["gen_ai_provider_name"] == "sim"
    assert count[0]["lockgate_backend"] == "sim"
    assert count[0]["gen_ai_request_model"] == "sim-small"
    assert "lockgate_request_id" not in count[0]
    buckets = {labels["le"]: v for labels, v in samples(ttft, "_bucket")}
    assert buckets["0.1"] == 0
    assert buckets["0.25"] == N
    (ttft_sum,) = samples(ttft, "_sum")
    assert 0.12 * N <= ttft_sum[1] < 0.2 * N

    tpot = "gen_ai_server_time_per_output_token_seconds"
    (tpot_sum,) = samples(tpot, "_sum")
    # The simulator's 10 ms is the floor; a loaded 2-core machine only stretches the gaps (a CI run saw 15.7 ms).
    # Seconds, not ms: a unit slip would be 1000x off either bound.
    assert 0.009 <= tpot_sum[1] / N < 0.03
    itl_counts = samples("lockgate_inter_token_latency_seconds", "_count")
    assert sum(v for _, v in itl_counts) == N * 5  # token-weighted: 5 gaps per 6-token request

    usage = {labels["gen_ai_token_type"]: v for labels, v in samples("gen_ai_client_token_usage", "_sum")}
    assert usage["output"] == 6 * N
    outcomes = {labels["lockgate_outcome"]: v for labels, v in samples("lockgate_requests", "_total")}
    assert outcomes == {"ok": N}  # the 400 never reached a backend, so it is no upstream request
    duration = samples("gen_ai_server_request_duration_seconds", "_count")
    assert sum(v for _, v in duration) == N
    queue = {labels["lockgate_backend"]: v for labels, v in samples("lockgate_queue_depth", "")}
    assert queue == {"sim": 0}
    health = {labels["state"]: v for labels, v in samples("lockgate_backend_health", "")}
    assert health["ok"] == 1
    assert health["down"] == 0


def test_metrics_can_be_turned_off() -> None:
    text_config = sim_config()
    config = replace(text_config, telemetry=replace(text_config.telemetry, prometheus=False))
    with LiveServer(config) as server:
        assert httpx.get(server.url + "/metrics").status_code == 404


def test_otel_environment_overrides_the_file() -> None:
    base = TelemetryConfig(traces="none", service_name="file-name")
    env = {"OTEL_TRACES_EXPORTER": "otlp", "OTEL_SERVICE_NAME": "env-name",
           "OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4318", "OTEL_EXPORTER_OTLP_PROTOCOL": "grpc"}
    cfg = effective(base, env)
    assert (cfg.traces, cfg.service_name, cfg.otlp_endpoint, cfg.otlp_protocol) == (
        "otlp", "env-name", "http://collector:4318", "grpc")
    assert effective(base, {"OTEL_SDK_DISABLED": "true", "OTEL_TRACES_EXPORTER": "otlp"}).traces == "none"
    with pytest.raises(TelemetryConfigError):
        effective(base, {"OTEL_TRACES_EXPORTER": "zipkin"})
