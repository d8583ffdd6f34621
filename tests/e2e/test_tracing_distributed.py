"""One trace across real processes: client -> `lockgate gateway` -> Redis -> `lockgate worker` -> engine.

The engine is a protocol replica of vLLM (`lockgate sim-server`, the simulator behind vLLM's wire format),
which logs the `traceparent` it received, so the test sees that the engine request joined the same trace.
Spans arrive over real OTLP/HTTP and are decoded from protobuf.
"""

from __future__ import annotations

import json
import os
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import redis

from tests.support.otlp import OtlpReceiver, ReceivedSpan
from tests.support.procs import Process, free_port

KIND = {"SERVER": 2, "CLIENT": 3, "PRODUCER": 4, "CONSUMER": 5}
CLIENT_TRACE = "a3ce929d0e0e47364bf92f3577b34da6"
CLIENT_SPAN = "00f067aa0ba902b7"
REDIS_URL = os.environ.get("LOCKGATE_TEST_REDIS_URL", "redis://127.0.0.1:6379/9")


@pytest.fixture
def prefix() -> Iterator[str]:
    prefix = f"lgtrace{uuid.uuid4().hex[:8]}"
    yield prefix
    r = redis.Redis.from_url(REDIS_URL)
    keys = list(r.scan_iter(f"{prefix}*"))
    if keys:
        r.delete(*keys)


def test_trace_spans_gateway_queue_worker_and_engine(tmp_path: Path, prefix: str) -> None:
    engine_port, gateway_port = free_port(), free_port()
    request_log = tmp_path / "engine-requests.jsonl"
    with OtlpReceiver() as otlp:
        config = tmp_path / "lockgate.toml"
        config.write_text(f"""
[auth]
enabled = false
[routing]
health_interval_s = 0.2
[dispatch]
kind = "redis"
redis_url = "{REDIS_URL}"
key_prefix = "{prefix}"
[telemetry]
traces = "otlp"
otlp_endpoint = "{otlp.url}"
[models.m]
backends = [{{ backend = "vllm-a" }}]
[backends.vllm-a]
kind = "vllm"
options = {{ url = "http://127.0.0.1:{engine_port}", model = "sim", poll_interval_s = 0.2 }}
""")
        env = {"OTEL_BSP_SCHEDULE_DELAY": "50"}
        engine = Process(["sim-server", "--protocol", "vllm", "--port", str(engine_port), "--model", "sim",
                          "--request-log", str(request_log)], tmp_path / "engine.log")
        worker = Process(["worker", "--config", str(config)], tmp_path / "worker.log",
                         env={**env, "OTEL_SERVICE_NAME": "lockgate-worker"})
        gateway = Process(["gateway", "--config", str(config), "--port", str(gateway_port)], tmp_path / "gw.log",
                          env={**env, "OTEL_SERVICE_NAME": "lockgate-gateway"})
        procs = [engine, worker, gateway]
        try:
            engine.wait_http(f"http://127.0.0.1:{engine_port}/health")
            gateway.wait_http(f"http://127.0.0.1:{gateway_port}/healthz")
            url = f"http://127.0.0.1:{gateway_port}"
            deadline_ok = False
            for _ in range(100):
                if httpx.get(url + "/readyz").status_code == 200:
                    deadline_ok = True
                    break
                time.sleep(0.1)
            assert deadline_ok, gateway.output() + worker.output()
            resp = httpx.post(url + "/v1/chat/completions", timeout=30, json={
                "model": "m", "messages": [{"role": "user", "content": "trace me"}], "max_tokens": 5,
                "stream": True, "ignore_eos": True},
                headers={"traceparent": f"00-{CLIENT_TRACE}-{CLIENT_SPAN}-01"})
            assert resp.status_code == 200, resp.text
            assert resp.headers["x-lockgate-trace-id"] == CLIENT_TRACE
            head, engine_ttft, connect = (float(resp.headers[f"x-lockgate-engine-{k}-ms"])
                                          for k in ("head", "ttft", "connect"))
            # The worker's engine call, split: the engine's head comes before its first token.
            assert 0 <= connect <= head <= engine_ttft
            spans = otlp.wait_for(lambda s: {x.kind for x in s if x.trace_id == CLIENT_TRACE} >= set(KIND.values()))
        finally:
            for p in reversed(procs):
                p.stop()
    mine: dict[int, ReceivedSpan] = {s.kind: s for s in spans if s.trace_id == CLIENT_TRACE}
    server, producer = mine[KIND["SERVER"]], mine[KIND["PRODUCER"]]
    consumer, client = mine[KIND["CONSUMER"]], mine[KIND["CLIENT"]]
    # Two processes, one trace, parent links all the way down.
    assert server.service == producer.service == "lockgate-gateway"
    assert consumer.service == client.service == "lockgate-worker"
    assert server.parent_span_id == CLIENT_SPAN
    assert producer.parent_span_id == server.span_id
    assert consumer.parent_span_id == producer.span_id
    assert client.parent_span_id == consumer.span_id
    assert server.attributes["gen_ai.provider.name"] == "vllm"
    assert server.attributes["lockgate.backend"] == "vllm-a"
    assert server.attributes["gen_ai.usage.output_tokens"] == 5
    assert server.events == ["first_token", "finish"]
    assert client.attributes["server.port"] == engine_port
    assert client.attributes["lockgate.engine.connection_new"] is (connect > 0)
    assert server.attributes["lockgate.engine_head_s"] == pytest.approx(head / 1000, abs=1e-5)
    assert client.attributes["gen_ai.provider.name"] == "vllm"
    # The engine received the CLIENT span's context in `traceparent`.
    seen = [json.loads(line) for line in request_log.read_text().splitlines()]
    generation = [r for r in seen if r["path"] == "/v1/chat/completions"]
    assert len(generation) == 1
    assert generation[0]["traceparent"].split("-")[1:3] == [CLIENT_TRACE, client.span_id]
