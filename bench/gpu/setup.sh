#!/usr/bin/env bash
# On the GPU machine, from the repo root, once /tmp/st holds the contents of every folder stage.sh made:
# installs the wheels, starts Redis, the OTLP sink, builds the model, starts vLLM and lockgate (BAKE_GATEWAYS gateway
# processes sharing port 8000, BAKE_WORKERS workers for vLLM, one for hf), and waits until both models answer
# through lockgate. Everything runs under setsid, so it outlives the `device` call and the next calls
# (bench/gpu/run.sh PHASE) find it running. Logs: $W/*.log.
#   bash bench/gpu/setup.sh
# Rehearsal here, on the CPU (a tiny model; the vLLM protocol replica stands in for vLLM):
#   BAKE_LOCAL=1 BAKE_REDIS_PORT=6390 bash bench/gpu/setup.sh      (a port of its own if a Redis runs on 6379)
# CPU pinning (bench/gpu/pin.py): BAKE_PIN=1 puts vLLM's whole process tree (API server, engine core, helpers, every
# thread) on its own physical cores and lockgate's gateways and workers, Redis and the OTLP sink on the others, once
# everything has started (torch.compile keeps all CPUs); run.sh then starts the bench client on lockgate's side too.
# The sets come from the topology: vLLM gets the last BAKE_PIN_VLLM_CORES physical cores (default 3/8 of them) with
# their hyperthread siblings; or give them as cpulists: BAKE_PIN_VLLM_CPUS=8-15 BAKE_PIN_REST_CPUS=0-7. Without
# BAKE_PIN, nothing is pinned; either way `bash bench/gpu/run.sh pin pinned|open` switches later, without a restart.
#   BAKE_PIN=1 bash bench/gpu/setup.sh
set -euo pipefail
ROOT=$(pwd)
source "$ROOT/bench/gpu/env.sh"
mkdir -p "$W"

if [ -z "${BAKE_LOCAL:-}" ] && [ ! -f "$SITE/.installed" ]; then
  tar -C /tmp -xzf "$ST/redis-bundle.tgz"
  install_wheels "$ST" "$SITE"
  # SGLang's wheels, when carried (stage.sh sglang), install meanwhile: run.sh sglang-start needs them later.
  if ls "$SGST"/*.whl* >/dev/null 2>&1; then
    setsid bash bench/gpu/sglang_install.sh >"$W/sglang-install.log" 2>&1 < /dev/null &
  fi
fi

RPORT=${BAKE_REDIS_PORT:-6379}  # another port keeps a rehearsal off a Redis that this machine already runs
if ! "$PY" -c "import redis; redis.Redis(port=$RPORT, socket_connect_timeout=1).ping()" 2>/dev/null; then
  LD_LIBRARY_PATH=$REDIS_LIB setsid "$REDIS_SERVER" --port "$RPORT" --bind 127.0.0.1 --save "" --appendonly no \
    --daemonize yes --logfile "$W/redis.log" --pidfile "$W/redis.pid"
fi
setsid "$PY" bench/gpu/otlp_sink.py --port 4318 --out "$W/spans.jsonl" >"$W/otlp.log" 2>&1 < /dev/null &

if [ ! -f "$W/model/config.json" ]; then
  "$PY" bench/gpu/build_model.py --out "$W/model" --device "$BAKE_DEVICE" ${BAKE_LOCAL:+--tiny} 2>&1 | tail -3
fi

sed -e "s|/tmp/bake/model|$W/model|" -e "s|127.0.0.1:6379|127.0.0.1:$RPORT|" \
  -e "s|device = \"cuda\"|device = \"$BAKE_DEVICE\"|" bench/gpu/lockgate-gpu.toml >"$W/lockgate.toml"
pin_all() {  # once everything runs: the sets, then pinned (BAKE_PIN) or open
  "$PY" bench/gpu/pin.py topology
  if [ -n "${BAKE_PIN:-}" ]; then "$PY" bench/gpu/pin.py apply pinned; else "$PY" bench/gpu/pin.py apply open; fi
}

if [ "${BAKE_ENGINE:-vllm}" = sglang ]; then
  # SGLang alone (no vLLM, no hf): needs only the lockgate folders of stage.sh's vLLM set (its last two, c3 and
  # c4 today) and SGLang's.
  start_gateways "${BAKE_GATEWAYS:-4}"
  bash bench/gpu/run.sh sglang-start
  pin_all
  echo "setup done (SGLang): $(date -u +%T)"
  exit 0
fi

start_vllm

setsid "$PY" -m gateway.cli worker --config "$W/lockgate.toml" --backend hf-a >"$W/worker-hf.log" 2>&1 < /dev/null &
wait_for http://127.0.0.1:8100/health 600 vLLM "$W/vllm.log"
start_workers vllm-a "${BAKE_WORKERS:-4}"
# More lockgate targets on the same vLLM for the engine phase (BAKE_LG), each with its own workers: BAKE_VARIANTS
# names backends of lockgate-gpu.toml (vllm-notp, vllm-nocu, vllm-cu, vllm-anyio, vllm-httpx); BAKE_NOCU=1 is "vllm-nocu vllm-cu".
models=(qwen-vllm qwen-hf)
for b in $(variants); do
  start_workers "$b" "${BAKE_WORKERS:-4}"
  models+=("$(model_of "$b")")
done
start_gateways "${BAKE_GATEWAYS:-4}"
"$PY" bench/gpu/smoke.py --models "${models[@]}" --timeout 600
if [ -n "${BAKE_EMBEDDED:-}" ]; then  # BAKE_EMBEDDED=N: N lockgate serve, embedded dispatch, on :8001 (...@8001 in BAKE_LG)
  start_serve lockgate-embedded 8001 "$BAKE_EMBEDDED"
fi
if [ -n "${BAKE_COLOCATED:-}" ]; then  # BAKE_COLOCATED=N: N lockgate serve, Redis dispatch + local start, on :8002
  start_serve lockgate-local 8002 "$BAKE_COLOCATED"
fi
pin_all
echo "setup done: $(date -u +%T)"
