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

install_wheels() {  # FROM TARGET: the carried wheels of FROM (parts of a split one joined first) into TARGET
  local first name
  for first in "$1"/*.part.00; do
    [ -e "$first" ] || continue
    name=${first%.part.00}
    cat "$name".part.* > "$name" && rm "$name".part.*
  done
  "$PY" -m pip install -q --no-index --no-deps --no-compile --target "$2" "$1"/*.whl
  touch "$2/.installed"
}

wait_for() {  # URL SECONDS WHAT LOG
  "$PY" bench/gpu/smoke.py --wait "$1" --timeout "$2" || { echo "$3: last lines of $4:" >&2; tail -40 "$4" >&2; exit 1; }
}

start_workers() {  # BACKEND COUNT: lockgate workers for one backend of $W/lockgate.toml
  for i in $(seq "$2"); do
    setsid "$PY" -m gateway.cli worker --config "$W/lockgate.toml" --backend "$1" >"$W/worker-$1-$i.log" 2>&1 \
      < /dev/null &
  done
}

stop_workers() {  # BACKEND...: SIGTERM to their workers (they finish what they hold), then wait until they left
  "$PY" bench/gpu/pin.py stop-workers "$@"
}
