"""Spans exported over real OTLP/HTTP by a real `lockgate serve` process, decoded from protobuf."""

from __future__ import annotations

from pathlib import Path

import httpx

from tests.support.configs import sim_config_text
from tests.support.otlp import OtlpReceiver
from tests.support.procs import Process, free_port

SPAN_KINDS = {"SERVER": 2, "CLIENT": 3, "PRODUCER": 4, "CONSUMER": 5}
CLIENT_TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"


def test_one_trace_from_client_through_queue_to_worker(tmp_path: Path) -> None:
    with OtlpReceiver() as otlp:
        config = tmp_path / "c.toml"
        config.write_text(sim_config_text(backends={"sim": {"ttft_ms": 10, "tpot_ms": 2}}) +
                          f'[telemetry]\ntraces = "otlp"\notlp_endpoint = "{otlp.url}"\nservice_name = "gw-test"\n')
        port = free_port()
        proc = Process(["serve", "--config", str(config), "--port", str(port)], tmp_path / "log",
                       env={"OTEL_BSP_SCHEDULE_DELAY": "50"})
        try:
            proc.wait_http(f"http://127.0.0.1:{port}/healthz")
            resp = httpx.post(f"http://127.0.0.1:{port}/v1/chat/completions", json={
                "model": "sim-small", "messages": [{"role": "user", "content": "trace"}], "max_tokens": 4,
                "stream": True, "ignore_eos": True},
                headers={"traceparent": f"00-{CLIENT_TRACE}-00f067aa0ba902b7-01"})
            assert resp.status_code == 200
            assert resp.headers["x-lockgate-trace-id"] == CLIENT_TRACE
            spans = otlp.wait_for(lambda s: len([x for x in s if x.trace_id == CLIENT_TRACE]) >= 3)
        finally:
            proc.stop()
    mine = {s.kind: s for s in spans if s.trace_id == CLIENT_TRACE}
    server, producer, consumer = mine[SPAN_KINDS["SERVER"]], mine[SPAN_KINDS["PRODUCER"]], mine[SPAN_KINDS["CONSUMER"]]
    assert server.parent_span_id == "00f067aa0ba902b7"  # the client's span
    assert producer.parent_span_id == server.span_id
    assert consumer.parent_span_id == producer.span_id
    assert server.service == "gw-test"
    assert server.name == "chat sim-small"
    assert producer.name == "send sim"
    assert consumer.name == "process sim"
    assert server.attributes["gen_ai.operation.name"] == "chat"
    assert server.attributes["gen_ai.provider.name"] == "sim"
    assert server.attributes["gen_ai.usage.output_tokens"] == 4
    assert server.attributes["lockgate.attempt"] == 1
    assert server.attributes["lockgate.arm"] == "sim"
    assert "lockgate.route.reason" in server.attributes
    assert server.attributes["lockgate.queue_wait_s"] >= 0
    assert server.attributes["gen_ai.response.time_to_first_chunk"] >= 0.01
    assert server.attributes["lockgate.tpot_s"] > 0
    assert server.events == ["first_token", "finish"]
