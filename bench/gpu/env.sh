# Sourced by setup.sh and run.sh: where things are on the GPU machine (or here, with BAKE_LOCAL=1).
export W=${W:-/tmp/bake}
export ST=${ST:-/tmp/st}
export SITE=${SITE:-/tmp/site}
# SGLang's wheels and install, kept apart from vLLM's: it pins other versions of shared packages.
export SGST=${SGST:-/tmp/sgst} SGSITE=${SGSITE:-/tmp/sgsite}
if [ -n "${BAKE_LOCAL:-}" ]; then
  export PY=${PY:-$ROOT/.venv/bin/python} BAKE_DEVICE=cpu
  export REDIS_SERVER=$(command -v redis-server) REDIS_LIB=""
else
  export PY=${PY:-python3} BAKE_DEVICE=cuda
  export PYTHONPATH=$ROOT:$SITE HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1
  export REDIS_SERVER=/tmp/redis-bundle/redis-server REDIS_LIB=/tmp/redis-bundle/lib
fi
export PYTHONUNBUFFERED=1

install_wheels() {  # FROM TARGET: the carried wheels of FROM (parts of a split one joined first, xz'd ones
  local first name   # unpacked: bench/gpu/repack.py) into TARGET
  for first in "$1"/*.part.00; do
    [ -e "$first" ] || continue
    name=${first%.part.00}
    cat "$name".part.* > "$name" && rm "$name".part.*
  done
  "$PY" "$ROOT/bench/gpu/repack.py" unpack "$1"
  "$PY" -m pip install -q --no-index --no-deps --no-compile --target "$2" "$1"/*.whl
  touch "$2/.installed"
}

wait_for() {  # URL SECONDS WHAT LOG
  "$PY" bench/gpu/smoke.py --wait "$1" --timeout "$2" || { echo "$3: last lines of $4:" >&2; tail -40 "$4" >&2; exit 1; }
}

wake_config() {  # the config workers start with: $W/lockgate.toml, or a copy of it with BAKE_WAKE=fifo|warm's
  # dispatch.wake, BAKE_COALESCE_MS's dispatch.coalesce_ms and BAKE_PACK's dispatch.pack (0: jobs spread over every
  # worker, as before packing) (lockgate-wake-*.toml; pin.py knows all by the prefix)
  local cfg=$W/lockgate.toml extra=""
  [ -n "${BAKE_WAKE:-}" ] && extra+="\nwake = \"$BAKE_WAKE\""
  [ -n "${BAKE_COALESCE_MS:-}" ] && extra+="\ncoalesce_ms = $BAKE_COALESCE_MS"
  [ -n "${BAKE_PACK:-}" ] && extra+="\npack = $BAKE_PACK"
  if [ -n "$extra" ]; then
    cfg=$W/lockgate-wake-${BAKE_WAKE:-default}${BAKE_COALESCE_MS:+-c$BAKE_COALESCE_MS}${BAKE_PACK:+-p$BAKE_PACK}.toml
    sed "s/^\[dispatch\]\$/[dispatch]$extra/" "$W/lockgate.toml" >"$cfg"
  fi
  echo "$cfg"
}

start_workers() {  # BACKEND COUNT: lockgate workers for one backend (wake_config's config)
  local cfg
  cfg=$(wake_config)
  for i in $(seq "$2"); do
    setsid "$PY" -m gateway.cli worker --config "$cfg" --backend "$1" >"$W/worker-$1-$i.log" 2>&1 < /dev/null &
  done
}

start_gateways() {  # COUNT: lockgate gateways sharing port 8000 (server.reuse_port)
  for i in $(seq "$1"); do
    setsid "$PY" -m gateway.cli gateway --config "$W/lockgate.toml" >"$W/gateway-$i.log" 2>&1 < /dev/null &
  done
  wait_for http://127.0.0.1:8000/healthz 60 "lockgate gateway" "$W/gateway-1.log"
}

stop_workers() {  # BACKEND...: SIGTERM to their workers (they finish what they hold), then wait until they left
  "$PY" bench/gpu/pin.py stop-workers "$@"
}

start_serve() {  # NAME PORT COUNT: COUNT `lockgate serve` processes of bench/gpu/NAME.toml sharing PORT, then a
  # request through them. lockgate-embedded (embedded dispatch, :8001), lockgate-local (Redis dispatch with
  # dispatch.local, :8002). pin.py knows lockgate's processes by --config $W/lockgate*.
  sed -e "s|127.0.0.1:6379|127.0.0.1:${BAKE_REDIS_PORT:-6379}|" "bench/gpu/$1.toml" >"$W/$1.toml"
  for i in $(seq "$3"); do
    setsid "$PY" -m gateway.cli serve --config "$W/$1.toml" >"$W/$1-$i.log" 2>&1 < /dev/null &
  done
  wait_for "http://127.0.0.1:$2/healthz" 120 "lockgate serve ($1)" "$W/$1-1.log"
  "$PY" bench/gpu/smoke.py --gateway "http://127.0.0.1:$2" --models qwen-vllm --timeout 120
}

# Every vLLM backend of lockgate-gpu.toml: what run.sh stops before it starts other workers or another engine.
VLLM_BACKENDS=(vllm-a vllm-nocu vllm-cu vllm-notp vllm-anyio vllm-httpx vllm-cap)

model_of() {  # BACKEND: the model lockgate-gpu.toml routes to it (vllm-a -> qwen-vllm, vllm-notp -> qwen-vllm-notp)
  case $1 in vllm-a) echo qwen-vllm ;; sglang-a) echo qwen-sglang ;; hf-a) echo qwen-hf ;; *) echo "qwen-$1" ;; esac
}

variants() {  # the extra vLLM backends setup.sh starts workers for: BAKE_VARIANTS, or BAKE_NOCU=1's two
  echo "${BAKE_VARIANTS:-${BAKE_NOCU:+vllm-nocu vllm-cu}}"
}

start_vllm() {  # vLLM on :8100 (or its replica with BAKE_LOCAL), under setsid; extra server flags in BAKE_VLLM_ARGS
  if [ -n "${BAKE_LOCAL:-}" ]; then
    setsid "$PY" -m gateway.cli sim-server --protocol vllm --port 8100 --model qwen-bake \
      >>"$W/vllm.log" 2>&1 < /dev/null &
  else
    # Only the one traced request (sampled traceparent) is exported by vLLM: the bench's requests carry none.
    # shellcheck disable=SC2086  # BAKE_VLLM_ARGS is a list of flags
    OTEL_EXPORTER_OTLP_TRACES_PROTOCOL=http/protobuf OTEL_SERVICE_NAME=vllm \
    OTEL_TRACES_SAMPLER=parentbased_traceidratio OTEL_TRACES_SAMPLER_ARG=0 \
    setsid "$PY" -m vllm.entrypoints.cli.main serve "$W/model" --served-model-name qwen-bake --port 8100 \
      --max-model-len 2048 --gpu-memory-utilization 0.55 ${BAKE_VLLM_ARGS:-} \
      --otlp-traces-endpoint http://127.0.0.1:4318/v1/traces >>"$W/vllm.log" 2>&1 < /dev/null &
  fi
  echo $! >"$W/vllm.pid"  # the root of vLLM's process tree (or the replica's), for bench/gpu/pin.py
}

stop_engine() {  # SIGTERM to the engine's process group ($W/vllm.pid: vLLM, its replica or SGLang); wait until gone
  local pid
  pid=$(cat "$W/vllm.pid" 2>/dev/null) || return 0
  if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then
    kill -TERM -- "-$pid" 2>/dev/null || kill -TERM "$pid"
    for _ in $(seq 60); do kill -0 "$pid" 2>/dev/null || break; sleep 1; done
  fi
}
