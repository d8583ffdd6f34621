"""Attribute and metric names. GenAI semantic conventions as of semconv 1.37 (development status)."""

OPERATION = "gen_ai.operation.name"
PROVIDER = "gen_ai.provider.name"
REQUEST_MODEL = "gen_ai.request.model"
RESPONSE_MODEL = "gen_ai.response.model"
REQUEST_MAX_TOKENS = "gen_ai.request.max_tokens"
REQUEST_TEMPERATURE = "gen_ai.request.temperature"
REQUEST_TOP_P = "gen_ai.request.top_p"
REQUEST_STREAM = "gen_ai.request.stream"
RESPONSE_ID = "gen_ai.response.id"
RESPONSE_FINISH_REASONS = "gen_ai.response.finish_reasons"
USAGE_INPUT = "gen_ai.usage.input_tokens"
USAGE_OUTPUT = "gen_ai.usage.output_tokens"
TIME_TO_FIRST_CHUNK = "gen_ai.response.time_to_first_chunk"
TOKEN_TYPE = "gen_ai.token.type"
ERROR_TYPE = "error.type"

BACKEND = "lockgate.backend"
ARM = "lockgate.arm"
ATTEMPT = "lockgate.attempt"
QUEUE_WAIT = "lockgate.queue_wait_s"
ENGINE_TTFT = "lockgate.engine_ttft_s"
FIRST_RELAY = "lockgate.first_token_relay_s"
# From the job's start in the worker to the engine's response head (HTTP adapters): the engine's intake.
ENGINE_HEAD = "lockgate.engine_head_s"
# On an engine call's CLIENT span: whether its connection went back to the pool for the next request.
CONNECTION_KEPT = "lockgate.engine.connection_kept"
# On an engine call's CLIENT span, set only when true: the lean client sent the request a second time, on a new
# connection, because the engine had closed the kept one it first went out on (before any byte of an answer).
CONNECTION_RETRIED = "lockgate.engine.connection_retried"
# On an engine call's CLIENT span (lean client): whether the request needed a new connection, and how long opening
# it took (only when it did).
CONNECTION_NEW = "lockgate.engine.connection_new"
CONNECT_TIME = "lockgate.engine.connect_s"
# On an engine call's CLIENT span: what sent the request, "httpx" or "lean" (the backend's HttpOptions.client).
ENGINE_CLIENT = "lockgate.engine.client"
# On an engine call's CLIENT span: whether the engine got a traceparent (the backend's trace_propagation).
TRACEPARENT_SENT = "lockgate.engine.traceparent_sent"
PRIORITY = "lockgate.priority"
DISPATCH_WAKE = "lockgate.dispatch.wake"
"""How the job reached a worker: ``packed`` (a packing worker's own bell), ``warm`` (an idle worker's own bell),
``shared`` (the shared bell: no worker was idle), ``local`` (started by the gateway's own worker, ``dispatch.local``),
``inprocess`` (the embedded dispatch's queue)."""
TPOT = "lockgate.tpot_s"
ITL_MEAN = "lockgate.itl_mean_s"
OUTCOME = "lockgate.outcome"
PHASE = "lockgate.phase"
REQUEST_ID = "lockgate.request_id"
PAIR_ID = "lockgate.shadow.pair_id"

TTFT_BUCKETS = (0.001, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.25, 0.5, 0.75, 1, 2.5, 5, 7.5, 10)
TPOT_BUCKETS = (0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5, 0.75, 1, 2.5)
DURATION_BUCKETS = (0.01, 0.02, 0.04, 0.08, 0.16, 0.32, 0.64, 1.28, 2.56, 5.12, 10.24, 20.48, 40.96, 81.92)
TOKEN_BUCKETS = (1, 4, 16, 64, 256, 1024, 4096, 16384, 65536, 262144, 1048576, 4194304, 16777216, 67108864)
# Finer than TTFT's: gateway overhead and queue wait live in the sub-millisecond range.
OVERHEAD_BUCKETS = (0.0001, 0.00025, 0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10)
