"""Spans and metrics of a request, read back from in-memory exporters."""

from __future__ import annotations

import httpx
import pytest
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind

from gateway.config.schema import TelemetryConfig
from observability.telemetry import Telemetry
from tests.support.configs import sim_config
from tests.support.live import LiveServer


def metric_points(reader: InMemoryMetricReader) -> dict[str, list[object]]:
    out: dict[str, list[object]] = {}
    data = reader.get_metrics_data()
    assert data is not None
    for rm in data.resource_metrics:
        for sm in rm.scope_metrics:
            for m in sm.metrics:
                out.setdefault(m.name, []).extend(m.data.data_points)
    return out


def test_request_spans_and_latency_metrics() -> None:
    spans = InMemorySpanExporter()
    reader = InMemoryMetricReader()
    telemetry = Telemetry.build(TelemetryConfig(), span_processors=[SimpleSpanProcessor(spans)],
                                metric_readers=[reader])
    config = sim_config(backends={"sim": {"ttft_ms": 30, "tpot_ms": 10}})
    with LiveServer(config, telemetry=telemetry) as server:
        resp = httpx.post(server.url + "/v1/chat/completions", json={
            "model": "sim-small", "messages": [{"role": "user", "content": "trace me"}], "max_tokens": 5,
            "stream": True, "ignore_eos": True},
            headers={"traceparent": "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"})
        assert resp.status_code == 200
        trace_id = resp.headers["x-lockgate-trace-id"]
        engine_ttft = float(resp.headers["x-lockgate-engine-ttft-ms"])
        relay = float(resp.headers["x-lockgate-relay-ms"])
        assert 30 <= engine_ttft < 200  # the simulator's TTFT, as the worker saw it
        assert 0 <= relay < 50
        assert engine_ttft + relay <= float(resp.headers["x-lockgate-ttft-ms"]) + 1
        # An in-process engine has no HTTP call to split further.
        assert "x-lockgate-engine-head-ms" not in resp.headers
        assert "x-lockgate-engine-connect-ms" not in resp.headers
        assert server.wait_for(lambda: len(spans.get_finished_spans()) >= 3)
    by_kind = {s.kind: s for s in spans.get_finished_spans()}
    server_span, producer, consumer = by_kind[SpanKind.SERVER], by_kind[SpanKind.PRODUCER], by_kind[SpanKind.CONSUMER]
    # The client's traceparent is honoured: one trace from the caller through the queue to the worker.
    assert trace_id == "0af7651916cd43dd8448eb211c80319c"
    assert {format(s.context.trace_id, "032x") for s in (server_span, producer, consumer)} == {trace_id}
    assert producer.parent is not None
    assert producer.parent.span_id == server_span.context.span_id
    assert consumer.parent is not None
    assert consumer.parent.span_id == producer.context.span_id
    attrs = server_span.attributes or {}
    assert server_span.name == "chat sim-small"
    assert attrs["gen_ai.operation.name"] == "chat"
    assert attrs["gen_ai.provider.name"] == "sim"
    assert attrs["gen_ai.usage.output_tokens"] == 5
    assert attrs["gen_ai.response.finish_reasons"] == ("length",)
    assert attrs["lockgate.backend"] == "sim"
    assert float(attrs["gen_ai.response.time_to_first_chunk"]) >= 0.03  # type: ignore[arg-type]
    assert attrs["lockgate.engine_ttft_s"] == pytest.approx(engine_ttft / 1000, abs=1e-5)
    assert attrs["lockgate.first_token_relay_s"] == pytest.approx(relay / 1000, abs=1e-5)
    assert [e.name for e in server_span.events] == ["first_token", "finish"]

    points = metric_points(reader)
    (ttft,) = points["gen_ai.server.time_to_first_token"]
    assert ttft.count == 1  # type: ignore[attr-defined]
    assert 0.03 <= ttft.sum < 0.1  # type: ignore[attr-defined]
    assert dict(ttft.attributes)["gen_ai.provider.name"] == "sim"  # type: ignore[attr-defined]
    assert "lockgate.request_id" not in dict(ttft.attributes)  # type: ignore[attr-defined]
    (tpot,) = points["gen_ai.server.time_per_output_token"]
    assert tpot.sum == pytest.approx(0.010, abs=0.005)  # type: ignore[attr-defined]
    itl = points["lockgate.inter_token_latency"]
    assert sum(p.count for p in itl) == 4  # type: ignore[attr-defined]
    usage = {dict(p.attributes)["gen_ai.token.type"]: p.sum for p in points["gen_ai.client.token.usage"]}  # type: ignore[attr-defined]
    assert usage["output"] == 5
    (requests,) = points["lockgate.requests"]
    assert dict(requests.attributes)["lockgate.outcome"] == "ok"  # type: ignore[attr-defined]


def test_telemetry_off_records_nothing() -> None:
    t = Telemetry()
    with t.tracer.start_as_current_span("x") as span:
        assert not span.get_span_context().is_valid
