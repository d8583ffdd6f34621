"""A real OTLP/HTTP receiver for tests: decodes ExportTraceServiceRequest protobufs into plain spans."""

from __future__ import annotations

import threading
import time
from http.server import ThreadingHTTPServer
from typing import Any

import msgspec
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from bench.gpu.otlp_sink import handler_for, value_of


class ReceivedSpan(msgspec.Struct):
    service: str
    name: str
    kind: int
    trace_id: str
    span_id: str
    parent_span_id: str
    attributes: dict[str, Any]
    events: list[str]
    links: list[tuple[str, str]]
    status_code: int


class OtlpReceiver:
    def __init__(self) -> None:
        self.spans: list[ReceivedSpan] = []
        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), handler_for(self._ingest))
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def _ingest(self, request: ExportTraceServiceRequest) -> None:
        with self._lock:
            for rs in request.resource_spans:
                resource = {a.key: value_of(a.value, tuple) for a in rs.resource.attributes}
                for ss in rs.scope_spans:
                    for s in ss.spans:
                        self.spans.append(ReceivedSpan(
                            service=str(resource.get("service.name", "")), name=s.name, kind=s.kind,
                            trace_id=s.trace_id.hex(), span_id=s.span_id.hex(), parent_span_id=s.parent_span_id.hex(),
                            attributes={a.key: value_of(a.value, tuple) for a in s.attributes},
                            events=[e.name for e in s.events],
                            links=[(link.trace_id.hex(), link.span_id.hex()) for link in s.links],
                            status_code=s.status.code))

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def __enter__(self) -> OtlpReceiver:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()

    def wait_for(self, predicate: Any, timeout: float = 15) -> list[ReceivedSpan]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self._lock:
                spans = list(self.spans)
            if predicate(spans):
                return spans
            time.sleep(0.05)
        raise TimeoutError(f"OTLP spans never matched; got {[s.name for s in self.spans]}")
