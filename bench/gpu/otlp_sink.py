"""An OTLP/HTTP trace receiver that appends every span, with its times, to a JSON-lines file.

Stands in for a collector on the GPU machine (nothing else can run there): lockgate and vLLM both export to it.

    python3 bench/gpu/otlp_sink.py --port 4318 --out /tmp/bake/spans.jsonl
"""

from __future__ import annotations

import argparse
import json
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from opentelemetry.proto.common.v1.common_pb2 import AnyValue


def value_of(v: AnyValue, array: Callable[[list[Any]], Any] = list) -> Any:
    """An OTLP attribute value as Python; arrays through ``array`` (list for JSON, tuple as the SDK keeps them)."""
    kind = v.WhichOneof("value")
    if kind == "array_value":
        return array([value_of(x, array) for x in v.array_value.values])
    return getattr(v, kind) if kind else None


def handler_for(on_traces: Callable[[ExportTraceServiceRequest], None]) -> type[BaseHTTPRequestHandler]:
    """An OTLP/HTTP (protobuf) request handler: ``/v1/traces`` bodies go to ``on_traces``; every POST gets the
    empty success response an exporter expects."""

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
            if self.path == "/v1/traces":
                on_traces(ExportTraceServiceRequest.FromString(body))
            payload = ExportTraceServiceResponse().SerializeToString()
            self.send_response(200)
            self.send_header("Content-Type", "application/x-protobuf")
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        def log_message(self, *args: object) -> None:
            pass

    return Handler


def spans_of(request: ExportTraceServiceRequest) -> list[dict[str, Any]]:
    rows = []
    for rs in request.resource_spans:
        service = next((value_of(a.value) for a in rs.resource.attributes if a.key == "service.name"), "")
        for ss in rs.scope_spans:
            for s in ss.spans:
                rows.append({
                    "service": service, "name": s.name, "kind": s.kind, "trace_id": s.trace_id.hex(),
                    "span_id": s.span_id.hex(), "parent_span_id": s.parent_span_id.hex(),
                    "start_ns": s.start_time_unix_nano, "end_ns": s.end_time_unix_nano,
                    "attributes": {a.key: value_of(a.value) for a in s.attributes},
                    "events": [{"name": e.name, "time_ns": e.time_unix_nano} for e in s.events],
                    "status_code": s.status.code,
                })
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--port", type=int, default=4318)
    parser.add_argument("--out", required=True)
    args = parser.parse_args()
    lock = threading.Lock()

    def write(request: ExportTraceServiceRequest) -> None:
        rows = spans_of(request)
        with lock, open(args.out, "a") as fh:
            fh.writelines(json.dumps(r) + "\n" for r in rows)

    ThreadingHTTPServer(("127.0.0.1", args.port), handler_for(write)).serve_forever()


if __name__ == "__main__":
    main()
