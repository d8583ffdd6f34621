"""The CLIENT span of one engine call, and the ``traceparent`` the engine receives."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Literal

import httpx
from opentelemetry import context as otel_context
from opentelemetry.trace import Span, SpanKind, Tracer, get_current_span, set_span_in_context
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator
from opentelemetry.util.types import AttributeValue

from observability import semconv as sc

_PROPAGATOR = TraceContextTextMapPropagator()


@contextmanager
def engine_call(
    tracer: Tracer, url: httpx.URL, engine: str,
    propagation: Literal["always", "sampled", "never"] = "always",
) -> Iterator[tuple[Span, dict[str, str]]]:
    """Open ``POST {url}`` as a child of the current span (the worker's CONSUMER span) and give the headers
    that carry it to the engine (none where ``propagation`` says so: ``sampled`` sends them only for a trace
    that is recorded). With a no-op tracer the current context is forwarded instead, so the engine still joins
    the caller's trace."""
    parent = otel_context.get_current()
    port = url.port or (443 if url.scheme == "https" else 80)
    attrs: dict[str, AttributeValue] = {
        "server.address": url.host, "server.port": port, "http.request.method": "POST", "url.full": str(url),
        sc.PROVIDER: engine}
    # Not made current: this runs inside an async generator, which may be closed from another context.
    span = tracer.start_span(f"POST {url}", kind=SpanKind.CLIENT, attributes=attrs, context=parent)
    try:
        carrier: dict[str, str] = {}
        ctx = set_span_in_context(span, parent) if span.get_span_context().is_valid else parent
        if propagation == "always" or (
                propagation == "sampled" and get_current_span(ctx).get_span_context().trace_flags.sampled):
            _PROPAGATOR.inject(carrier, context=ctx)
        span.set_attribute(sc.TRACEPARENT_SENT, "traceparent" in carrier)
        yield span, carrier
    finally:
        span.end()
