"""Options every HTTP adapter shares: where the engine is, how to pool connections, when to give up."""

from __future__ import annotations

from typing import Annotated, Literal

import msgspec

PositiveFloat = Annotated[float, msgspec.Meta(gt=0)]
PositiveInt = Annotated[int, msgspec.Meta(ge=1)]


class HttpOptions(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    url: Annotated[str, msgspec.Meta(pattern=r"^https?://[^\s/]+(/[^\s]*)?$")]
    """Base URL of the engine's server, e.g. ``http://10.0.0.5:8000``. Backend URLs come only from config."""
    model: str = ""
    """Model name the engine serves (``--served-model-name``); empty: the public model name of the request."""
    headers: dict[str, str] = msgspec.field(default_factory=dict)
    """Extra headers on every engine request (e.g. ``Authorization`` when the engine has ``--api-key``)."""
    trace_propagation: Literal["always", "sampled", "never"] = "always"
    """When the engine gets a ``traceparent``: ``always`` (it can join any trace, also one lockgate did not
    sample), ``sampled`` (only where lockgate records the trace: vLLM with ``--otlp-traces-endpoint`` carries a
    request's trace headers with every token it makes, work a trace nobody records does not need), ``never``."""
    network: Literal["asyncio", "anyio"] = "asyncio"
    """What httpx's engine connections run on (the probes', and generation requests' with ``client = "httpx"``):
    ``asyncio`` (plain asyncio transports, backends/http/network.py; 30% less CPU per streamed token) or ``anyio``
    (httpx's own default), the way back should the asyncio one misbehave somewhere."""
    client: Literal["lean", "httpx"] = "lean"
    """What sends generation requests: ``lean`` (backends/http/lean.py: lockgate's own HTTP/1.1 client for one POST
    and its streamed answer; 0.6 ms less to the first token at c=1 and 18% less worker CPU per token on the H200,
    docs/performance.md) or ``httpx`` (its transport, on the ``network`` above: the way back should the lean client
    misbehave somewhere). Probes use httpx either way."""
    connect_timeout_s: PositiveFloat = 3.0
    """TCP connect (and TLS) limit; a refused or slow connect is a retryable failure (another backend may serve)."""
    ttft_timeout_s: PositiveFloat = 60.0
    """Longest wait from sending a request to the engine's first token (covers its queue and prefill)."""
    idle_timeout_s: PositiveFloat = 30.0
    """Longest silence between two chunks once tokens flow; then the stream ends with one error event."""
    write_timeout_s: PositiveFloat = 10.0
    """Longest time to send the request body."""
    pool_timeout_s: PositiveFloat = 5.0
    """Longest wait for a free pooled connection when ``max_connections`` are all streaming."""
    max_connections: PositiveInt = 512
    """Connections to this engine at most; each streaming request holds one for its whole length."""
    max_keepalive_connections: PositiveInt = 128
    """Idle connections kept open for reuse, so a burst does not pay TCP setup again."""
    keepalive_expiry_s: PositiveFloat = 30.0
    """How long an idle pooled connection is kept (keep it under the engine's keep-alive, uvicorn's is 5 s)."""
    poll_interval_s: PositiveFloat = 2.0
    """How often health and load are read from the engine in the background."""
    probe_timeout_s: PositiveFloat = 2.0
    """Limit for one health or load probe; a slow probe counts as down."""
    max_concurrency: PositiveInt = 64
    """Jobs a worker runs at once on this backend (the engine batches them)."""
    max_n: PositiveInt = 8
    """Largest ``n`` sent to this engine in one request."""
