"""lockgate's configuration: one TOML file parsed into these Structs. Each field documents itself."""

from __future__ import annotations

from typing import Annotated, Any, Literal

import msgspec

Positive = Annotated[int, msgspec.Meta(gt=0)]
PositiveFloat = Annotated[float, msgspec.Meta(gt=0)]


class _Section(msgspec.Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    pass


class ServerConfig(_Section, frozen=True):
    host: str = "127.0.0.1"
    """Address to listen on."""
    port: Annotated[int, msgspec.Meta(ge=0, le=65535)] = 8000
    """TCP port (0 picks a free one)."""
    max_body_bytes: Positive = 1_048_576
    """Largest request body accepted, counted as it arrives (chunked bodies included); larger is 413."""
    log_format: Literal["text", "json"] = "text"
    """Log line format; ``json`` writes one JSON object per line."""
    log_level: Literal["debug", "info", "warning", "error"] = "info"
    """Lowest level logged."""
    shutdown_grace_s: Annotated[float, msgspec.Meta(ge=0)] = 10.0
    """On shutdown, how long running requests may finish before they are cancelled."""
    header_timeout_s: PositiveFloat = 10.0
    """A request's headers must arrive within this long of its first byte (slow clients are cut off)."""
    body_timeout_s: PositiveFloat = 30.0
    """The whole request body must arrive within this long (408 otherwise)."""
    write_timeout_s: PositiveFloat = 30.0
    """A response write blocked this long (the client stopped reading) drops the client and cancels its job."""
    max_connections: Positive = 4096
    """Connections served at once; a request on one more gets 503 (OpenAI's error shape) at once."""
    max_buffered_events: Positive = 1024
    """Events buffered per request between worker and client; a slower client holds back the job."""
    reuse_port: bool = False
    """Bind with ``SO_REUSEPORT`` so several ``lockgate gateway`` processes on one host share the port and the
    kernel spreads connections over them (one Python process streams some thousands of tokens/s; Linux only)."""


KeyId = Annotated[str, msgspec.Meta(pattern="^[A-Za-z0-9_.-]{1,64}$")]
Sha256 = Annotated[str, msgspec.Meta(pattern="^[0-9a-f]{64}$")]


class ApiKey(_Section, frozen=True):
    name: str
    """Who the key belongs to (logged; the key itself never is)."""
    sha256: Sha256
    """Hex SHA-256 of the key; make one with ``lockgate config hash-key``."""
    id: KeyId | None = None
    """Id in metrics, usage and the admin API (default: the name)."""
    models: tuple[str, ...] = ()
    """Models this key may use (empty: all)."""
    priority: Annotated[int, msgspec.Meta(ge=0, le=7)] = 0
    """Priority band of its jobs (higher is served first; see ``dispatch.priority_bands``)."""
    rpm: Positive | None = None
    """Requests per minute (token bucket refilled continuously); none: unlimited."""
    tpm: Positive | None = None
    """Tokens per minute, prompt and completion together; none: unlimited."""
    max_concurrent: Positive | None = None
    """Requests in flight at once; none: unlimited."""
    expires_at: int | None = None
    """Unix time (s) after which the key is refused."""


class AuthConfig(_Section, frozen=True):
    enabled: bool = True
    """Require an API key (``Authorization: Bearer KEY``). Turn off only for local use."""
    keys: tuple[ApiKey, ...] = ()
    """Accepted keys, stored as hashes. ``LOCKGATE_API_KEYS`` (comma-separated plain keys) adds more."""
    admin_keys: tuple[ApiKey, ...] = ()
    """Keys for admin routes and the backend-pin header; never accepted for inference.
    ``LOCKGATE_ADMIN_KEYS`` adds plain ones. With auth off and no admin key, admin routes are open."""


class TenantsConfig(_Section, frozen=True):
    key_cache_s: Annotated[float, msgspec.Meta(ge=0)] = 5.0
    """How long a gateway caches a key lookup: the revocation delay. A key revoked or changed through another
    gateway is honoured by this one within this long (at once by the gateway that made the change)."""
    keys_file: str | None = None
    """Embedded dispatch: TOML file where keys created through the admin API are stored (hashed), relative to
    the working directory. Without it, the admin API cannot create keys in embedded mode. With Redis dispatch,
    keys are stored in Redis and this is not used."""
    lease_tokens: Positive = 256
    """Completion tokens a streaming request takes from its key's TPM budget at a time; it asks for more (one
    Redis round trip) when they are used up, and returns what is left at the end."""
    slot_ttl_s: PositiveFloat = 30.0
    """A concurrency slot not refreshed for this long is freed (a crashed gateway leaks nothing longer)."""
    usage_retention_days: Positive = 35
    """Per-day usage buckets (and revoked keys) are kept this many days."""
    key_ttl_days: Positive = 400
    """A key without an expiry that is not used for this many days is forgotten (every Redis key expires);
    each lookup renews it."""


class LimitsConfig(_Section, frozen=True):
    max_queue_depth: Positive = 256
    """Jobs allowed to wait per backend; beyond it requests get 429 with Retry-After."""
    retry_after_s: PositiveFloat = 1.0
    """Retry-After given with a 429."""
    max_n: Positive = 8
    """Largest ``n`` accepted."""
    max_attempts: Positive = 2
    """Upstream attempts per request, first included; retries happen only before the first token."""
    ttft_timeout_s: PositiveFloat = 60.0
    """A request with no first token by then fails with 504."""
    idle_timeout_s: PositiveFloat = 30.0
    """A stream with no event for this long fails with an error event."""
    request_timeout_s: PositiveFloat = 600.0
    """Deadline from arrival: a job past it is not started."""


class PoolMember(_Section, frozen=True):
    backend: str
    """Name of a backend in ``[backends]``."""
    weight: Annotated[float, msgspec.Meta(ge=0)] = 1.0
    """Share of the model's traffic (relative to the other members); an arm's weight is its members' sum."""
    role: Literal["primary", "fallback", "shadow"] = "primary"
    """``primary`` serves traffic; ``fallback`` only when no primary can; ``shadow`` gets copies (see
    ``experiment.shadow_fraction``) whose answers are recorded, never returned."""
    arm: str | None = None
    """Experiment arm this member belongs to (default: its backend name). Users stick to an arm."""


class ExperimentConfig(_Section, frozen=True):
    salt: str = ""
    """Mixed into the sticky hash; changing it reassigns every user."""
    sticky_keys: tuple[Literal["user", "session", "api_key"], ...] = ("user", "session", "api_key")
    """Where the stickiness key comes from, first present wins; no key means a random arm per request."""
    session_header: str = "x-session-id"
    """Header carrying a session id (for ``session`` stickiness and affinity)."""
    shadow_fraction: Annotated[float, msgspec.Meta(ge=0, le=1)] = 0.0
    """Fraction of requests also sent, unchanged, to the model's shadow members."""


class ModelConfig(_Section, frozen=True):
    backends: tuple[PoolMember, ...]
    """The pool serving this public model name."""
    max_context: Positive = 8192
    """Context length in tokens, as the model has it."""
    max_output_tokens: Positive = 4096
    """Largest ``max_tokens`` accepted; also the default when a request gives none."""
    owned_by: str = "lockgate"
    """``owned_by`` in /v1/models."""
    experiment: ExperimentConfig = msgspec.field(default_factory=ExperimentConfig)
    """Sticky A/B assignment and shadowing."""
    affinity: Literal["none", "session", "prefix"] = "none"
    """Prefer one backend per session or prompt prefix (cache reuse), unless it is saturated."""
    affinity_prefix_chars: Annotated[int, msgspec.Meta(ge=1)] = 512
    """With ``affinity = "prefix"``: how much of the prompt identifies a prefix."""


class BackendConfig(_Section, frozen=True):
    kind: str
    """Adapter plugin name from the ``lockgate.backends`` entry-point group (``sim`` is built in)."""
    options: dict[str, Any] = msgspec.field(default_factory=dict)
    """Options of that kind; ``lockgate config check`` validates them against the plugin's schema."""
    concurrency: Positive | None = None
    """Jobs a worker runs at once on this backend (default: the adapter's own figure)."""


class RoutingConfig(_Section, frozen=True):
    health_interval_s: PositiveFloat = 2.0
    """How often each backend's own health check runs (also the readmission probe)."""
    eject_after: Positive = 5
    """Consecutive failures after which a backend is taken out of rotation."""
    error_rate_threshold: Annotated[float, msgspec.Meta(gt=0, le=1)] = 0.5
    """Error rate over the last ``error_rate_window`` outcomes that also ejects a backend."""
    error_rate_window: Positive = 20
    """Outcomes considered for the error rate (and the minimum before it applies)."""
    ejection_s: PositiveFloat = 5.0
    """First ejection's length; it doubles with each ejection in a row. After it, a health probe must
    succeed before traffic returns."""
    max_ejection_s: PositiveFloat = 60.0
    """Longest ejection."""
    retry_budget_ratio: Annotated[float, msgspec.Meta(ge=0, le=1)] = 0.2
    """Retries allowed as a fraction of requests (on top of ``min_retries_per_s``), so a failing fleet is
    not hit by a retry storm."""
    min_retries_per_s: Annotated[float, msgspec.Meta(ge=0)] = 3.0
    """Retries always allowed per second, whatever the ratio says."""
    saturation: Annotated[float, msgspec.Meta(gt=0)] = 1.0
    """A backend whose load score reaches this is saturated: affinity gives way to load. The score is
    (in-flight + engine-waiting) / max_concurrency, or KV-cache use when that is higher."""


class RedisConnectionConfig(_Section, frozen=True):
    """How to reach Redis: standalone, through Sentinel, or a Redis Cluster (see docs/dispatch-redis.md).

    By default everything comes from ``dispatch.redis_url``; a field set here fills in or overrides it."""

    mode: Literal["url", "standalone", "sentinel", "cluster"] = "url"
    """``url``: the ``redis_url`` scheme decides (``redis://``/``rediss://`` standalone,
    ``redis+sentinel://`` Sentinel, ``redis+cluster://`` Cluster; ``rediss+...`` for TLS). ``sentinel``
    and ``cluster`` take their addresses from ``sentinels`` / ``cluster_nodes`` below instead."""
    sentinels: tuple[str, ...] = ()
    """With ``mode = "sentinel"``: Sentinel addresses as ``host:port``."""
    service_name: str | None = None
    """With Sentinel: the monitored master's name (``SENTINEL MONITOR <name> ...``)."""
    cluster_nodes: tuple[str, ...] = ()
    """With ``mode = "cluster"``: some Cluster nodes as ``host:port`` (the rest are discovered)."""
    db: Annotated[int, msgspec.Meta(ge=0)] | None = None
    """Database number (standalone and Sentinel; a Cluster has only database 0)."""
    username: str | None = None
    """ACL user for the Redis servers (``AUTH username password``)."""
    password: str | None = None
    """Password for the Redis servers; ``LOCKGATE_REDIS_PASSWORD`` overrides it (keep it out of files)."""
    sentinel_username: str | None = None
    """ACL user for the Sentinels themselves, when they require auth."""
    sentinel_password: str | None = None
    """Password for the Sentinels themselves; ``LOCKGATE_REDIS_SENTINEL_PASSWORD`` overrides it."""
    tls: bool | None = None
    """Connect over TLS (as ``rediss://`` does); with Sentinel it applies to the master and the Sentinels."""
    tls_ca_file: str | None = None
    """CA bundle to verify the servers' certificates (default: the system's)."""
    tls_cert_file: str | None = None
    """Client certificate, for servers that require one (``tls-auth-clients``)."""
    tls_key_file: str | None = None
    """Private key of ``tls_cert_file``."""
    tls_verify: bool = True
    """Verify the servers' certificates and host names; turn off only for testing."""
    failover_check_s: PositiveFloat = 0.5
    """With Sentinel: how often each process asks the Sentinels who the master is. A new master fails the
    requests in flight at once (their events may be lost with the old master) instead of after the old master
    is demoted, which can take 10 s, and sends new commands to the new master."""


class DispatchConfig(_Section, frozen=True):
    kind: Literal["embedded", "redis"] = "embedded"
    """``embedded``: asyncio queues and workers inside the gateway process. ``redis``: Redis Streams between
    ``lockgate gateway`` and ``lockgate worker`` processes (see docs/dispatch-redis.md)."""
    redis_url: str = "redis://127.0.0.1:6379/0"
    """Redis to use with ``kind = "redis"``; ``LOCKGATE_REDIS_URL`` overrides it. ``redis://[user:pass@]host:port/DB``,
    ``rediss://`` (TLS), ``redis+sentinel://h1:p1,h2:p2/SERVICE/DB``, ``redis+cluster://h1:p1,h2:p2``."""
    redis: RedisConnectionConfig = msgspec.field(default_factory=RedisConnectionConfig)
    """Deployment mode, addresses, auth and TLS beyond what the URL says (``[dispatch.redis]``)."""
    key_prefix: Annotated[str, msgspec.Meta(pattern="^[A-Za-z0-9_.-]+$")] = "lg"
    """First part of every Redis key lockgate writes (several deployments can share one Redis)."""
    priority_bands: Annotated[int, msgspec.Meta(ge=1, le=8)] = 2
    """Job streams per backend; a job's priority picks its band (clamped), higher bands are served first."""
    visibility_timeout_s: PositiveFloat = 30.0
    """A job held this long by a worker that stopped heartbeating is taken by another worker."""
    heartbeat_interval_s: PositiveFloat = 5.0
    """How often workers refresh their jobs, health and load; must be under half the visibility timeout."""
    max_deliveries: Positive = 3
    """A job delivered more times than this goes to the dead-letter stream and its client gets one error."""
    block_ms: Positive = 1000
    """Longest a blocking read waits before checking for shutdown."""
    wake: Literal["fifo", "warm"] = "fifo"
    """Which idle worker a new job wakes (workers' setting). ``fifo``: the one idle longest, as Redis serves a
    shared BLPOP. ``warm``: the one that became idle last, whose process and caches are still warm (an
    idle-worker stack in Redis). On the H200 bake-off it made no difference to the client's TTFT at
    concurrency 1 that the noise would not cover, and a worker killed while idle delays the one job that picks
    it by up to ``block_ms``. See docs/dispatch-redis.md, *Which worker wakes*."""
    pack: Annotated[int, msgspec.Meta(ge=0)] = 16
    """Workers' setting (Redis dispatch): a worker holding at least one job of a backend and fewer than ``pack``
    (or its capacity, if lower) gets the backend's next job before any other worker, the one with the least room
    left first; 0 = off (each job goes to whichever worker is waiting, as ``wake`` says). At moderate load jobs
    then fill a few workers instead of spreading thinly over all, and each worker's wake-ups and Redis writes carry
    more streams: 43% less worker CPU per request in bench/dispatch.py at 20 req/s with 3 workers. Past ``pack``
    jobs per worker they spread again, one per take. See docs/dispatch-redis.md, *Packing jobs*."""
    local: bool = False
    """Redis dispatch in a process that runs workers too (``lockgate serve``): a job starts at once on this
    process's own worker when it has a free slot, while the submit records it in Redis in that worker's pending list
    (heartbeated, reclaimable, acknowledged as any taken job); its events go straight to the client, not through
    Redis. If jobs are waiting, the job queues for the fleet as usual (fair order kept) and the local start is
    aborted. The first token then skips both Redis hops (docs/dispatch-redis.md, *Local start*). Needs ``pack`` >= 1.
    No effect on ``lockgate gateway`` (no workers in its process)."""
    coalesce_ms: Annotated[float, msgspec.Meta(ge=0)] = 1.0
    """Deltas a worker produces within this window (after the first token) go out in one XADD."""
    inbox_ttl_s: PositiveFloat = 60.0
    """TTL of a gateway's inbox stream; the gateway refreshes it, so it outlives the gateway by at most this."""
    job_key_ttl_s: PositiveFloat = 3600.0
    """TTL of per-job keys (cancel flag, streamed marker); workers delete them when a job ends."""
    stream_ttl_s: PositiveFloat = 86400.0
    """TTL of job and dead-letter streams, refreshed on every enqueue and heartbeat."""
    dead_letter_maxlen: Positive = 10_000
    """Dead-letter entries kept per backend (approximate trim: they are already out of the job streams)."""


class TelemetryConfig(_Section, frozen=True):
    service_name: str = "lockgate"
    """``service.name`` resource attribute (``OTEL_SERVICE_NAME`` overrides)."""
    traces: Literal["none", "console", "otlp"] = "none"
    """Where spans go (``OTEL_TRACES_EXPORTER`` overrides). ``none`` costs nothing: no-op tracer."""
    metrics: Literal["none", "console", "otlp"] = "none"
    """Where metrics are pushed (``OTEL_METRICS_EXPORTER`` overrides); /metrics is separate."""
    prometheus: bool = True
    """Serve Prometheus text format on ``GET /metrics``."""
    otlp_endpoint: str | None = None
    """OTLP collector base URL, e.g. ``http://collector:4318`` (http) or ``http://collector:4317`` (grpc).
    Default: ``OTEL_EXPORTER_OTLP_ENDPOINT``, else the exporter's own default (localhost)."""
    otlp_protocol: Literal["http/protobuf", "grpc"] = "http/protobuf"
    """OTLP transport (``OTEL_EXPORTER_OTLP_PROTOCOL`` overrides)."""
    trace_sample_ratio: Annotated[float, msgspec.Meta(ge=0, le=1)] = 1.0
    """Fraction of new traces sampled; a sampled incoming ``traceparent`` is always honoured."""
    export_interval_ms: Positive = 10_000
    """Metric push period (OTLP, console)."""
    record_content: bool = False
    """Record prompts and completions on spans (off: they are never recorded)."""


class Config(_Section, frozen=True):
    models: dict[str, ModelConfig]
    """Public model names and their backend pools."""
    backends: dict[str, BackendConfig]
    """Backends by name."""
    server: ServerConfig = msgspec.field(default_factory=ServerConfig)
    auth: AuthConfig = msgspec.field(default_factory=AuthConfig)
    tenants: TenantsConfig = msgspec.field(default_factory=TenantsConfig)
    limits: LimitsConfig = msgspec.field(default_factory=LimitsConfig)
    routing: RoutingConfig = msgspec.field(default_factory=RoutingConfig)
    dispatch: DispatchConfig = msgspec.field(default_factory=DispatchConfig)
    telemetry: TelemetryConfig = msgspec.field(default_factory=TelemetryConfig)
