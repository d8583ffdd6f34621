# Sourced by setup.sh and run.sh: where things are on the GPU machine (or here, with BAKE_LOCAL=1).
export W=${W:-/tmp/bake}
export ST=${ST:-/tmp/st}
export SITE=${SITE:-/tmp/site}
if [ -n "${BAKE_LOCAL:-}" ]; then
  export PY=${PY:-$ROOT/.venv/bin/python} BAKE_DEVICE=cpu
  export REDIS_SERVER=$(command -v redis-server) REDIS_LIB=""
else
  export PY=${PY:-python3} BAKE_DEVICE=cuda
  export PYTHONPATH=$ROOT:$SITE HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1
  export REDIS_SERVER=/tmp/redis-bundle/redis-server REDIS_LIB=/tmp/redis-bundle/lib
fi
export PYTHONUNBUFFERED=1
