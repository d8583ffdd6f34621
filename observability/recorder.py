"""Per-request timing at the gateway edge: one SERVER span and the latency metrics of METRICS.md.

Times inside the process use ``perf_counter``; times that cross the queue (enqueue, engine start, engine
chunk arrival) are wall-clock ns carried in the job and its events.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence

from opentelemetry.context import Context
from opentelemetry.trace import Link, Span, SpanKind, Status, StatusCode, set_span_in_context
from opentelemetry.util.types import AttributeValue

from backends.events import Completed, Delta, Failed, Started
from backends.request import GenerationRequest
from observability import semconv as sc
from observability.propagation import trace_id_hex, traceparent_of
from observability.telemetry import Telemetry


class RequestRecorder:
    def __init__(self, telemetry: Telemetry, request: GenerationRequest, parent: Context | None, *,
                 links: Sequence[Link] = (), shadow_of: str | None = None) -> None:
        """``shadow_of``: the pair id when this request is a shadow copy (linked to its primary's span)."""
        self._t = telemetry
        self.received = time.perf_counter()
        self.received_ns = time.time_ns()
        self._request = request
        attrs: dict[str, AttributeValue] = {
            sc.OPERATION: request.operation,
            sc.REQUEST_MODEL: request.model,
            sc.REQUEST_MAX_TOKENS: request.max_tokens,
            sc.REQUEST_STREAM: request.stream,
            sc.REQUEST_ID: request.request_id,
        }
        if request.temperature is not None:
            attrs[sc.REQUEST_TEMPERATURE] = request.temperature
        if request.top_p is not None:
            attrs[sc.REQUEST_TOP_P] = request.top_p
        if shadow_of is not None:
            attrs[sc.PAIR_ID] = shadow_of
        name = f"{'shadow ' if shadow_of else ''}{request.operation} {request.model}"
        self.span: Span = telemetry.tracer.start_span(
            name, kind=SpanKind.SERVER if shadow_of is None else SpanKind.INTERNAL, context=parent,
            attributes=attrs, links=links)
        self._shadow = shadow_of is not None
        self._metric_attrs: dict[str, AttributeValue] = {
            sc.OPERATION: request.operation, sc.REQUEST_MODEL: request.model, sc.PROVIDER: "unknown",
            sc.BACKEND: "none", sc.ARM: "shadow" if self._shadow else "default"}
        self.backend = ""
        self.queue_wait: float | None = None
        self.started_ns: int | None = None
        self.first: float | None = None
        self.last: float | None = None
        self.tokens = 0
        self._itl_sum = 0.0
        self._itl_tokens = 0
        self._itl: list[float] = []
        self._ended = False
        self._model_attrs: dict[str, AttributeValue] = {sc.REQUEST_MODEL: request.model}
        telemetry.buffer.record(telemetry.instruments.in_flight, 1, self._model_attrs)

    @property
    def trace_id(self) -> str | None:
        return trace_id_hex(self.span)

    def routed(self, backend: str, engine: str, arm: str, attempt: int, decision: Mapping[str, str]) -> None:
        self.backend = backend
        # A new dict, not an update: records already buffered (observability/buffer.py) hold the old one.
        self._metric_attrs = {**self._metric_attrs, sc.BACKEND: backend, sc.PROVIDER: engine,
                              sc.ARM: "shadow" if self._shadow else arm}
        self.span.set_attributes({sc.BACKEND: backend, sc.PROVIDER: engine, sc.ARM: arm, sc.ATTEMPT: attempt,
                                  **{f"lockgate.route.{k}": v for k, v in decision.items()}})

    def producer_span(self, backend: str) -> Span:
        """The PRODUCER span of one enqueue; its context travels in the job."""
        return self._t.tracer.start_span(
            f"send {backend}", kind=SpanKind.PRODUCER, context=set_span_in_context(self.span),
            attributes={"messaging.operation.type": "send", "messaging.destination.name": backend})

    @staticmethod
    def traceparent(span: Span) -> str | None:
        return traceparent_of(span)

    def retry(self, allowed: bool) -> None:
        outcome = "allowed" if allowed else "budget_exhausted"
        self._t.buffer.record(self._t.instruments.retries, 1,
                              {sc.REQUEST_MODEL: self._request.model, sc.OUTCOME: outcome})
        self.span.add_event("retry", {sc.OUTCOME: outcome})

    def enqueued(self, enqueued_ns: int) -> None:
        self._t.buffer.record(self._t.instruments.overhead, max(0.0, (enqueued_ns - self.received_ns) / 1e9),
                              {**self._metric_attrs, sc.PHASE: "request"})

    def started(self, event: Started, enqueued_ns: int) -> None:
        self.started_ns = event.t_ns
        self.queue_wait = max(0.0, (event.t_ns - enqueued_ns) / 1e9)
        self._t.buffer.record(self._t.instruments.queue_wait, self.queue_wait, self._metric_attrs)
        self.span.set_attribute(sc.QUEUE_WAIT, self.queue_wait)

    def first_token_path(self, first: Delta, arrived: float) -> dict[str, float]:
        """Where the first token's time went after the queue, in ms, for the response headers and the span.

        ``engine-ttft``: from the job's start in the worker to the engine's first chunk reaching the worker (the
        worker -> engine call plus the engine's own TTFT). ``relay``: from there until the gateway had it (worker
        -> dispatch -> gateway). ``arrived`` is the gateway's perf_counter at that moment. Both compare wall
        clocks of two processes: exact on one host, off by the clock skew across hosts. Where the HTTP adapter
        timed its call: ``engine-head``, the part of ``engine-ttft`` until the engine's response head (connection,
        request, the engine's intake), and ``engine-connect``, the time spent opening a new connection for it (0:
        a kept one).
        """
        if not first.t_ns or self.started_ns is None:
            return {}
        arrived_ns = self.received_ns + round((arrived - self.received) * 1e9)
        engine = max(0, first.t_ns - self.started_ns) / 1e6
        relay = max(0, arrived_ns - first.t_ns) / 1e6
        self.span.set_attributes({sc.ENGINE_TTFT: engine / 1000, sc.FIRST_RELAY: relay / 1000})
        path = {"engine-ttft": engine, "relay": relay}
        if first.head_ns:
            path["engine-head"] = max(0, first.head_ns - self.started_ns) / 1e6
            self.span.set_attribute(sc.ENGINE_HEAD, path["engine-head"] / 1000)
        if first.connect_ns >= 0:
            path["engine-connect"] = first.connect_ns / 1e6
        return path

    def chunk_sent(self, delta: Delta) -> None:
        """Called right after a token-carrying chunk was handed to the client connection."""
        if delta.tokens <= 0:
            return
        now = time.perf_counter()
        if self.first is None:
            self.first = now
            ttft = now - self.received
            self._t.buffer.record(self._t.instruments.ttft, ttft, self._metric_attrs)
            self.span.set_attribute(sc.TIME_TO_FIRST_CHUNK, ttft)
            self.span.add_event("first_token")
            if delta.t_ns:
                relay = max(0.0, (time.time_ns() - delta.t_ns) / 1e9)
                self._t.buffer.record(self._t.instruments.overhead, relay,
                                      {**self._metric_attrs, sc.PHASE: "first_chunk"})
        elif self.last is not None:
            per_token = (now - self.last) / delta.tokens
            self._itl_sum += now - self.last
            self._itl_tokens += delta.tokens
            # Recorded at the end in one batch (observability.bulk): one SDK record per token costs too much.
            if delta.tokens == 1:
                self._itl.append(per_token)
            else:
                self._itl.extend([per_token] * delta.tokens)
        self.last = now
        self.tokens += delta.tokens

    def completed(self, event: Completed, response_id: str) -> None:
        self.span.set_attributes({
            sc.RESPONSE_MODEL: self._request.model, sc.RESPONSE_ID: response_id,
            sc.RESPONSE_FINISH_REASONS: list(event.finish_reasons),
            sc.USAGE_INPUT: event.prompt_tokens, sc.USAGE_OUTPUT: event.completion_tokens})
        tokens = self._t.instruments.tokens
        self._t.buffer.record(tokens, event.prompt_tokens, {**self._metric_attrs, sc.TOKEN_TYPE: "input"})
        self._t.buffer.record(tokens, event.completion_tokens, {**self._metric_attrs, sc.TOKEN_TYPE: "output"})
        n_out = event.completion_tokens
        if self.first is not None and self.last is not None and n_out >= 2:
            tpot = (self.last - self.first) / (n_out - 1)
            self._t.buffer.record(self._t.instruments.tpot, tpot, self._metric_attrs)
            self.span.set_attribute(sc.TPOT, tpot)
        if self._itl_tokens:
            self.span.set_attribute(sc.ITL_MEAN, self._itl_sum / self._itl_tokens)
        self.span.add_event("finish", {sc.RESPONSE_FINISH_REASONS: list(event.finish_reasons)})
        self._end("ok")

    def failed(self, event: Failed) -> None:
        self.span.set_status(Status(StatusCode.ERROR, event.message))
        self.span.set_attribute(sc.ERROR_TYPE, event.code or event.type)
        self._end(event.code or event.type)

    def cancelled(self) -> None:
        self.span.set_attribute(sc.ERROR_TYPE, "client_disconnected")
        self._end("cancelled")

    def _end(self, outcome: str) -> None:
        if self._ended:
            return
        self._ended = True
        if self._itl:
            # Handed over, not copied: this recorder never touches the list again.
            self._t.buffer.record(self._t.instruments.itl, self._itl, self._metric_attrs)
            self._itl = []
        attrs = {**self._metric_attrs, sc.OUTCOME: outcome}
        if outcome != "ok":
            attrs[sc.ERROR_TYPE] = outcome
        self._t.buffer.record(self._t.instruments.duration, time.perf_counter() - self.received, attrs)
        self._t.buffer.record(self._t.instruments.requests, 1, attrs)
        self._t.buffer.record(self._t.instruments.in_flight, -1, self._model_attrs)
        self.span.set_attribute(sc.OUTCOME, outcome)
        self.span.end()
