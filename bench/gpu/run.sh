#!/usr/bin/env bash
# The bake-off's measurements, one phase per `device` call (each well inside the 10-minute limit), after setup.sh.
# Every phase replays lockgate bench's seeded schedule and prompts: short story prompts (60 words = 64-67 tokens
# with this tokenizer), 256 output tokens with ignore_eos, the completions endpoint, SLOs TTFT 500 ms, TPOT 50 ms.
#   bash bench/gpu/run.sh closed    # vLLM direct vs lockgate -> vllm, closed loop 1/32/100/256, 2 rounds A B / B A
#   bash bench/gpu/run.sh sweep     # the same two, open-loop Poisson at 0.25..1.25x the closed loop's best req/s
#   bash bench/gpu/run.sh hf        # lockgate -> hf in-process, closed loop 1/32/100/256
#   bash bench/gpu/run.sh trace     # one traced request: gateway -> Redis -> worker -> vLLM (vLLM's own span)
#   bash bench/gpu/run.sh engine    # closed loop like `closed`, with vLLM's own view of every (target, point, round)
#                                   # run: /metrics, CPU and run-queue wait per process around each (engine_bench.py)
#                                   # BAKE_POINTS (1,32,100,256), BAKE_ROUNDS (2), BAKE_TAG (engine-<pin state>),
#                                   # BAKE_LG ("qwen-vllm:lockgate-vllm"; model:label pairs, space-separated: the
#                                   # lockgate targets; setup.sh's BAKE_VARIANTS add models: vllm-notp ->
#                                   # qwen-vllm-notp, vllm-nocu -> qwen-vllm-nocu, vllm-httpx -> qwen-vllm-httpx, ...;
#                                   # LABEL@PORT: another port, e.g. qwen-vllm:lockgate-embedded@8001 with setup.sh's
#                                   # BAKE_EMBEDDED=N, N lockgate serve with the embedded dispatch),
#                                   # BAKE_DIRECT=sglang (SGLang direct, with BAKE_LG=qwen-sglang:lockgate-sglang),
#                                   # BAKE_POLL=1 (no vCPU of lockgate's set halts: burn.py --poll),
#                                   # BAKE_INTERLEAVE=1 (bench --interleave: each request to every target in
#                                   # turn, one shared run, added latency paired request by request; engine.json
#                                   # then has one row per point and round for all targets together)
#   bash bench/gpu/run.sh workers BACKEND [N]   # stop the vLLM/SGLang workers, start N (4) for BACKEND instead
#                                   # (BAKE_WAKE=fifo|warm: with that dispatch.wake; BAKE_COALESCE_MS=N: with that
#                                   # dispatch.coalesce_ms; BAKE_PACK=N: with that dispatch.pack, 0 = off)
#   bash bench/gpu/run.sh gateways [N]  # stop the gateways, start N (4) instead
#   bash bench/gpu/run.sh vllm-restart  # vLLM again with BAKE_VLLM_ARGS (e.g. "--api-server-count 2"), its workers too
#   bash bench/gpu/run.sh sglang-start  # stop vLLM, install and start SGLang 0.5.15 on :30000, 4 sglang-a workers
#   bash bench/gpu/run.sh sglang    # SGLang direct vs lockgate -> sglang, closed loop (BAKE_POINTS, BAKE_ROUNDS 1)
#   bash bench/gpu/run.sh burn      # direct vLLM alone, with and without busy loops on lockgate's CPUs (BAKE_BURN)
#   bash bench/gpu/run.sh shadow    # direct vLLM alone, and while lockgate carries c=32 to a replica on its CPUs
#                                   # (BAKE_SHADOW_C: the replica's load, 32; BAKE_TAG: the folder, shadow;
#                                   # BAKE_SHADOW_STEPS: the steps' order, idle-1 shadow-1 shadow-2 idle-2)
#   bash bench/gpu/run.sh pin pinned|open   # vLLM and the rest on separate cores, or both back on all (pin.py)
# The bench client runs on lockgate's CPUs while the processes are pinned (pin.py exec), on all CPUs otherwise.
# Results: $W/<phase>/ (summary.json, report.html, requests.jsonl); copied to $OUT as <phase>.tgz when OUT is set.
set -euo pipefail
ROOT=$(pwd)
source "$ROOT/bench/gpu/env.sh"
phase=$1
DUR=${BAKE_DURATION:-12}
VLLM="http://127.0.0.1:8100/v1,model=qwen-bake,label=vllm-direct"
LG="http://127.0.0.1:8000/v1,model=qwen-vllm,label=lockgate-vllm"
HF="http://127.0.0.1:8000/v1,model=qwen-hf,label=lockgate-hf"
SGL="http://127.0.0.1:30000/v1,model=qwen-bake,label=sglang-direct"
LGSGL="http://127.0.0.1:8000/v1,model=qwen-sglang,label=lockgate-sglang"
lg_targets=()
for pair in ${BAKE_LG:-qwen-vllm:lockgate-vllm}; do  # MODEL:LABEL, or MODEL:LABEL@PORT (the embedded one: 8001)
  port=8000
  case $pair in *@*) port=${pair##*@} pair=${pair%@*} ;; esac
  lg_targets+=(--target "http://127.0.0.1:$port/v1,model=${pair%%:*},label=${pair##*:}")
done
common=(--endpoint completions --input-len 60 --output-len 256 --slo-ttft-ms 500 --slo-tpot-ms 50
        --timeout 900 --no-progress)
bench() { "$PY" bench/gpu/pin.py exec -- "$PY" -m gateway.cli bench "$@"; }

case $phase in
  closed)
    bench --target "$VLLM" --target "$LG" -c 1,32,100,256 -d "$DUR" --warmup 2s --rounds 2 "${common[@]}" \
      --out "$W/closed" --scrape-metrics ;;
  sweep)
    rates=$("$PY" - "$W/closed/summary.json" <<'PY'
import json, sys
points = json.load(open(sys.argv[1]))["points"]
best = max(p["request_throughput"] for p in points if p["target"] == "lockgate-vllm")
print(",".join(f"{best * f:.2f}" for f in (0.25, 0.5, 0.75, 1.0, 1.25)))
PY
)
    echo "Poisson rates (req/s): $rates"
    bench --target "$VLLM" --target "$LG" -r "$rates" -d "$DUR" --warmup 2s --seed 7 --no-self-check \
      "${common[@]}" --out "$W/sweep" ;;
  hf)
    # Separate runs: one request count per concurrency keeps each point a few waves long on a slower engine.
    for cn in ${BAKE_HF_POINTS:-1:3 32:64 100:200 256:256}; do
      bench --target "$HF" -c "${cn%%:*}" -n "${cn##*:}" --warmup 0 --no-self-check "${common[@]}" \
        --out "$W/hf/c${cn%%:*}"
    done ;;
  trace)
    trace=$("$PY" -c 'import secrets; print(secrets.token_hex(16))')
    "$PY" - "$trace" <<'PY'
import json, sys, urllib.request
trace = sys.argv[1]
body = {"model": "qwen-vllm", "prompt": "req9x9 story time people world", "max_tokens": 32, "stream": True,
        "ignore_eos": True}
req = urllib.request.Request("http://127.0.0.1:8000/v1/completions", data=json.dumps(body).encode(), headers={
    "Content-Type": "application/json", "traceparent": f"00-{trace}-{'ab' * 8}-01"})
with urllib.request.urlopen(req, timeout=60) as resp:
    print({k: v for k, v in resp.headers.items() if k.lower().startswith("x-lockgate")})
    print(resp.read().decode()[-300:])
PY
    sleep 8  # both sides' batch span processors export within 5 s
    mkdir -p "$W/trace"
    "$PY" bench/gpu/render_trace.py "$W/spans.jsonl" --trace-id "$trace" --md "$W/trace/trace.md" \
      --svg "$W/trace/trace.svg"
    grep "$trace" "$W/spans.jsonl" >"$W/trace/spans.jsonl"
    "$PY" -c 'import urllib.request; print(urllib.request.urlopen("http://127.0.0.1:8000/metrics").read().decode())' \
      >"$W/trace/gateway-metrics.txt" ;;
  engine)
    mode=$("$PY" -c 'import sys; sys.path.insert(0, "bench/gpu"); import pin; print(pin.state()["mode"])')
    phase=${BAKE_TAG:-engine-$mode}
    # BAKE_DIRECT=sglang: SGLang (after sglang-start) is the direct target; its /metrics has none of vLLM's
    # names, so the engine-side columns stay empty, while the CPU figures and lockgate's TTFT split are there.
    direct=$VLLM base=vllm-direct metrics=http://127.0.0.1:8100/metrics
    if [ "${BAKE_DIRECT:-vllm}" = sglang ]; then
      direct=$SGL base=sglang-direct metrics=http://127.0.0.1:30000/metrics
    fi
    # BAKE_POLL=1: the whole phase beside one SCHED_IDLE loop per CPU of lockgate's set (burn.py --poll), so no
    # vCPU there halts between requests: how much of c=1's added first token is the host's wake-up of idle vCPUs.
    pre=()
    [ -n "${BAKE_POLL:-}" ] && pre=("$PY" -m bench.gpu.burn --poll --)
    "${pre[@]}" "$PY" bench/gpu/pin.py exec -- "$PY" -m bench.gpu.engine_bench --out "$W/$phase" \
      --engine-metrics "$metrics" -- \
      --target "$direct" "${lg_targets[@]}" -c "${BAKE_POINTS:-1,32,100,256}" -d "$DUR" --warmup 2s \
      --rounds "${BAKE_ROUNDS:-2}" ${BAKE_INTERLEAVE:+--interleave} --no-self-check "${common[@]}"
    "$PY" bench/gpu/tables.py "$W/$phase/summary.json" --baseline "$base" || true
    "$PY" bench/gpu/engine_table.py "$W/$phase/engine.json" --baseline "$base" --csv "$W/$phase/engine.csv" \
      || true ;;
  burn)
    # Direct vLLM alone, without and with BAKE_BURN (5) busy loops on lockgate's CPUs (bench/gpu/burn.py), in the
    # order idle burn burn idle: does load on the other CPUs slow vLLM's engine by itself? vLLM's own TPOT and
    # steps/s (engine_table) answer it; the fourth lease saw vLLM's ITL 10% higher under lockgate at c=32.
    for step in idle-1 burn-1 burn-2 idle-2; do
      pre=()
      [ "${step%-*}" = burn ] && pre=("$PY" -m bench.gpu.burn "${BAKE_BURN:-5}" --)
      "${pre[@]}" "$PY" bench/gpu/pin.py exec -- "$PY" -m bench.gpu.engine_bench --out "$W/burn/$step" \
        --engine-metrics http://127.0.0.1:8100/metrics -- --target "$VLLM" -c "${BAKE_POINTS:-32,100}" -d "$DUR" \
        --warmup 2s --rounds 1 --no-self-check "${common[@]}" | tail -n 3
      echo "== $step"
      "$PY" bench/gpu/engine_table.py "$W/burn/$step/engine.json" --baseline vllm-direct || true
    done ;;
  shadow)
    # Direct vLLM alone, and with lockgate carrying a like load (BAKE_SHADOW_C, 32) to a vLLM protocol replica on
    # lockgate's CPUs at the same time, in the order idle shadow shadow idle. lockgate's processes are as busy as in
    # its own runs, but none of its requests reach vLLM: if vLLM's ITL rises as it did beside lockgate's own
    # requests, the loss is the co-location on one host, not anything in lockgate's requests or relay.
    # BAKE_TAG names the results' folder (default shadow), so repeated runs in one lease keep each one's.
    phase=${BAKE_TAG:-shadow}
    if ! "$PY" bench/gpu/smoke.py --wait http://127.0.0.1:8200/health --timeout 1 >/dev/null 2>&1; then
      # The replica's pace is direct vLLM's at c=32 on the H200 (sixth lease: TTFT ~35 ms, TPOT ~2.7 ms).
      setsid "$PY" -m gateway.cli sim-server --protocol vllm --port 8200 --model qwen-bake \
        --ttft-ms "${BAKE_SHADOW_TTFT_MS:-35}" --tpot-ms "${BAKE_SHADOW_TPOT_MS:-2.7}" >"$W/shadow-engine.log" 2>&1 \
        < /dev/null &
      wait_for http://127.0.0.1:8200/health 60 "the shadow replica" "$W/shadow-engine.log"
      start_workers shadow-a "${BAKE_WORKERS:-4}"
      "$PY" bench/gpu/smoke.py --models qwen-shadow --timeout 120
      "$PY" bench/gpu/pin.py apply again
    fi
    # BAKE_SHADOW_STEPS: another order, e.g. "idle-1 shadow-1 idle-2 shadow-2 idle-3 shadow-3" to pair each shadow
    # step with the idle one beside it on a host that drifts within a minute.
    for step in ${BAKE_SHADOW_STEPS:-idle-1 shadow-1 shadow-2 idle-2}; do
      load=""
      if [ "${step%-*}" = shadow ]; then
        # Its own session, so the whole bench (and any process it starts) stops with the direct run.
        setsid "$PY" bench/gpu/pin.py exec -- "$PY" -m gateway.cli bench \
          --target "http://127.0.0.1:8000/v1,model=qwen-shadow,label=lockgate-shadow" -c "${BAKE_SHADOW_C:-32}" \
          -d 3600 --warmup 0 --no-self-check "${common[@]}" --out "$W/$phase/$step-load" >"$W/shadow-$step.log" 2>&1 &
        load=$!
        sleep 5  # the shadow at full load before the direct run starts
      fi
      "$PY" bench/gpu/pin.py exec -- "$PY" -m bench.gpu.engine_bench --out "$W/$phase/$step" \
        --engine-metrics http://127.0.0.1:8100/metrics -- --target "$VLLM" -c "${BAKE_POINTS:-32}" -d "$DUR" \
        --warmup 2s --rounds 1 --no-self-check "${common[@]}" | tail -n 3
      if [ -n "$load" ]; then
        kill -TERM -- "-$load" 2>/dev/null || true
        wait "$load" 2>/dev/null || true
      fi
      echo "== $step"
      "$PY" bench/gpu/engine_table.py "$W/$phase/$step/engine.json" --baseline vllm-direct || true
    done
    "$PY" bench/gpu/engine_table.py "$W/$phase"/*/engine.json --by-file --baseline vllm-direct || true
    # The replica and its workers leave, so the next measurement runs beside lockgate as it is without them.
    stop_workers shadow-a
    pkill -f "sim-serve[r] --protocol vllm --port 8200" || true ;;
  pin)
    "$PY" bench/gpu/pin.py apply "${2:-pinned}"
    exit 0 ;;
  gateways)
    "$PY" bench/gpu/pin.py stop-gateways
    start_gateways "${2:-4}"
    "$PY" bench/gpu/smoke.py --models qwen-vllm --timeout 120
    "$PY" bench/gpu/pin.py apply again
    exit 0 ;;
  workers)
    stop_workers "${VLLM_BACKENDS[@]}" sglang-a
    start_workers "$2" "${3:-4}"
    "$PY" bench/gpu/smoke.py --models "$(model_of "$2")" --timeout 120
    "$PY" bench/gpu/pin.py apply again  # the new processes get the pinning in force
    exit 0 ;;
  vllm-restart)
    # vLLM again with other server flags (BAKE_VLLM_ARGS, e.g. "--api-server-count 2"): its workers (vllm-a and
    # setup's BAKE_VARIANTS) leave first and come back on the new server; gateways, Redis and hf stay.
    backends=(vllm-a $(variants))
    stop_workers "${backends[@]}"
    stop_engine
    echo "== restart with: ${BAKE_VLLM_ARGS:-(no extra flags)}" >>"$W/vllm.log"
    started=$(date +%s)
    start_vllm
    wait_for http://127.0.0.1:8100/health 600 vLLM "$W/vllm.log"
    echo "vLLM answered /health after $(( $(date +%s) - started )) s"
    models=()
    for b in "${backends[@]}"; do start_workers "$b" "${BAKE_WORKERS:-4}"; models+=("$(model_of "$b")"); done
    "$PY" bench/gpu/smoke.py --models "${models[@]}" --timeout 300
    "$PY" bench/gpu/pin.py apply again
    exit 0 ;;
  sglang-start)
    # vLLM leaves first: SGLang gets the GPU memory and the CPUs vLLM had (pin.py treats it as the engine).
    stop_workers "${VLLM_BACKENDS[@]}"
    stop_engine
    if [ -n "${BAKE_LOCAL:-}" ]; then  # the rehearsal: SGLang's protocol replica stands in for it
      setsid "$PY" -m gateway.cli sim-server --protocol sglang --port 30000 --model qwen-bake \
        >"$W/sglang.log" 2>&1 < /dev/null &
    else
      while pgrep -f "sglang_install.s[h]" >/dev/null; do sleep 2; done  # setup.sh's background install
      bash bench/gpu/sglang_install.sh
      tail -3 "$W/sglang-install.log" 2>/dev/null || true
      nvidia-smi --query-gpu=memory.used,memory.total --format=csv,noheader || true
      # Only SGLang's own install on its path: vLLM's $SITE holds other versions of the packages both use.
      PYTHONPATH=$SGSITE setsid "$PY" -m sglang.launch_server --model-path "$W/model" --served-model-name qwen-bake \
        --host 127.0.0.1 --port 30000 --context-length 2048 --mem-fraction-static "${BAKE_SGLANG_MEM:-0.55}" \
        --enable-metrics >"$W/sglang.log" 2>&1 < /dev/null &
    fi
    echo $! >"$W/vllm.pid"
    started=$(date +%s)
    wait_for http://127.0.0.1:30000/health "${BAKE_SGLANG_WAIT:-420}" SGLang "$W/sglang.log"
    echo "SGLang answered /health after $(( $(date +%s) - started )) s"
    start_workers sglang-a "${BAKE_WORKERS:-4}"
    "$PY" bench/gpu/smoke.py --models qwen-sglang --timeout 120
    "$PY" bench/gpu/pin.py apply again  # the new processes get the pinning in force
    exit 0 ;;
  sglang)
    # The third lease's first direct request after SGLang's start took 55 s (a one-time compile, most likely):
    # a few requests of the bench's own shape first, outside the measurement.
    bench --target "$SGL" -c 4 -n 8 --warmup 0 --no-self-check "${common[@]}" --out "$W/sglang-warm" >/dev/null
    bench --target "$SGL" --target "$LGSGL" -c "${BAKE_POINTS:-1,32,100,256}" -d "$DUR" --warmup 2s \
      --rounds "${BAKE_ROUNDS:-1}" --no-self-check "${common[@]}" --out "$W/sglang"
    "$PY" bench/gpu/tables.py "$W/sglang/summary.json" --baseline sglang-direct || true ;;
  *) echo "unknown phase $phase" >&2; exit 2 ;;
esac
if [ -n "${OUT:-}" ]; then
  # The device tool returns files of at most 16 MiB: the per-request JSONL travels on its own, and the engine
  # phase's (BAKE_TAG names its folder) as one small row per request (slim_requests.py: the TTFT tail's split).
  "$PY" - "$W" "$phase" "$OUT" "$1" <<'PY'
import sys, tarfile
from pathlib import Path
w, phase, out, kind = Path(sys.argv[1]), sys.argv[2], Path(sys.argv[3]), sys.argv[4]
with tarfile.open(out / f"{phase}.tar.xz", "w:xz") as tar:
    tar.add(w / phase, arcname=phase, filter=lambda t: None if t.name.endswith("requests.jsonl") else t)
if kind == "engine":
    from bench.gpu import slim_requests  # the repo root is this script's path: run.sh runs from it
    slim_requests.write(slim_requests.slim_rows(w / phase), out / f"{phase}-requests-slim.jsonl.xz")
    sys.exit(0)
with tarfile.open(out / f"{phase}-requests.tar.xz", "w:xz") as tar:
    for f in sorted((w / phase).rglob("requests.jsonl")):
        tar.add(f, arcname=str(f.relative_to(w)))
PY
  for log in "$W"/*.log; do echo "== $log"; tail -n 30 "$log"; done >"$OUT/logs-tail.txt" 2>&1 || true
  # CPU seconds each process has used so far (utime+stime): where lockgate's cost goes at these rates.
  ps -eo pid,etimes,times,rss,args --sort=-times | grep -E "$W|redis-server" \
    | grep -v grep >"$OUT/$phase-cpu.txt" || true
fi
