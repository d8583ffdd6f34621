"""The metric instruments lockgate records, with the bucket boundaries METRICS.md fixes."""

from __future__ import annotations

from opentelemetry.metrics import Counter, Histogram, Meter, UpDownCounter

from observability import semconv as sc


class Instruments:
    def __init__(self, meter: Meter) -> None:
        self.ttft: Histogram = meter.create_histogram(
            "gen_ai.server.time_to_first_token", unit="s", description="Time to first token, gateway edge",
            explicit_bucket_boundaries_advisory=sc.TTFT_BUCKETS)
        self.tpot: Histogram = meter.create_histogram(
            "gen_ai.server.time_per_output_token", unit="s", description="(E2E - TTFT) / (tokens - 1)",
            explicit_bucket_boundaries_advisory=sc.TPOT_BUCKETS)
        self.duration: Histogram = meter.create_histogram(
            "gen_ai.server.request.duration", unit="s", description="Request received to last byte",
            explicit_bucket_boundaries_advisory=sc.DURATION_BUCKETS)
        self.tokens: Histogram = meter.create_histogram(
            "gen_ai.client.token.usage", unit="{token}", description="Tokens per request by type",
            explicit_bucket_boundaries_advisory=sc.TOKEN_BUCKETS)
        self.itl: Histogram = meter.create_histogram(
            "lockgate.inter_token_latency", unit="s", description="Token-weighted inter-token latency",
            explicit_bucket_boundaries_advisory=sc.TPOT_BUCKETS)
        self.queue_wait: Histogram = meter.create_histogram(
            "lockgate.queue.wait", unit="s", description="Job enqueued to picked by a worker",
            explicit_bucket_boundaries_advisory=sc.OVERHEAD_BUCKETS)
        self.overhead: Histogram = meter.create_histogram(
            "lockgate.gateway.overhead", unit="s",
            description="Time the gateway adds: phase=request (received to enqueued), "
            "phase=first_chunk (engine chunk to client write)",
            explicit_bucket_boundaries_advisory=sc.OVERHEAD_BUCKETS)
        self.requests: Counter = meter.create_counter(
            "lockgate.requests", unit="{request}", description="Requests by outcome")
        self.retries: Counter = meter.create_counter(
            "lockgate.routing.retries", unit="{attempt}",
            description="Retries before the first token, by outcome (allowed, budget_exhausted)")
        self.ejections: Counter = meter.create_counter(
            "lockgate.routing.ejections", unit="{ejection}", description="Backends taken out of rotation")
        self.shadow_requests: Counter = meter.create_counter(
            "lockgate.shadow.requests", unit="{request}", description="Shadow copies sent, by outcome")
        self.in_flight: UpDownCounter = meter.create_up_down_counter(
            "lockgate.requests.in_flight", unit="{request}", description="Requests being served")
