#!/usr/bin/env bash
# Run lockgate bench and NVIDIA's aiperf against the same `lockgate serve` simulator target with the same load,
# then print their TTFT/TPOT percentiles side by side (the numbers quoted in docs/bench.md). Both measure N
# requests after WARMUP warm-up requests (aiperf runs its warm-up apart; lockgate bench excludes the first ones).
# Needs network access to PyPI once (aiperf goes into its own virtualenv, $AIPERF_VENV).
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-out/bench-vs-aiperf}
AIPERF_VENV=${AIPERF_VENV:-.aiperf-venv}
URL=http://127.0.0.1:8100
N=${N:-240}; WARMUP=${WARMUP:-8}; ISL=${ISL:-128}; OSL=${OSL:-64}; CONC=${CONC:-4}; RATE=${RATE:-4}
mkdir -p "$OUT"
test -x "$AIPERF_VENV/bin/aiperf" || { python3 -m venv "$AIPERF_VENV"; "$AIPERF_VENV/bin/pip" install -q aiperf; }
"$AIPERF_VENV/bin/python" scripts/aiperf_word_tokenizer.py "$OUT/word-tokenizer" \
  "$("$AIPERF_VENV/bin/python" -c 'import aiperf, pathlib; print(pathlib.Path(aiperf.__file__).parent / "dataset/generator/assets/shakespeare.txt")')"

.venv/bin/lockgate serve --config examples/bench-sim.toml --log-level warning & SERVER=$!
.venv/bin/python -m loadtest.zero_server 8101 & ZERO=$!
trap 'kill $SERVER $ZERO' EXIT
for _ in $(seq 50); do curl -sf "$URL/healthz" >/dev/null && break; sleep 0.2; done

for shape in closed open; do
  if [ $shape = closed ]; then ours=(-c "$CONC"); theirs=(--concurrency "$CONC");
  else ours=(--rate "$RATE" --arrival poisson); theirs=(--request-rate "$RATE" --arrival-pattern poisson); fi
  .venv/bin/lockgate bench --target "$URL/v1" --model sim-bench "${ours[@]}" -n $((N + WARMUP)) --warmup "$WARMUP" \
    --input-len "$ISL" --output-len "$OSL" --out "$OUT/lockgate-$shape"
  "$AIPERF_VENV/bin/aiperf" profile --model sim-bench --url "$URL" --endpoint-type chat --streaming \
    "${theirs[@]}" --request-count "$N" --warmup-request-count "$WARMUP" --isl "$ISL" --osl "$OSL" \
    --extra-inputs ignore_eos:true --use-server-token-count --tokenizer "$OUT/word-tokenizer" --random-seed 0 \
    --artifact-dir "$OUT/aiperf-$shape" > "$OUT/aiperf-$shape.log" 2>&1
  echo "== $shape loop"
  .venv/bin/python scripts/compare_aiperf.py "$OUT/lockgate-$shape/summary.json" \
    "$OUT/aiperf-$shape/profile_export_aiperf.json" | tee "$OUT/compare-$shape.md"
done

# A third opinion at concurrency 1: curl's time to the first byte. lockgate sends the response head together with
# the first token, so time_starttransfer is TTFT as curl sees it.
.venv/bin/lockgate bench --target "$URL/v1" --model sim-bench -c 1 -n 38 --warmup 8 --input-len "$ISL" \
  --output-len "$OSL" --no-self-check --out "$OUT/lockgate-c1"
for i in $(seq 30); do
  curl -s -o /dev/null -w '%{time_starttransfer}\n' "$URL/v1/chat/completions" -H 'content-type: application/json' \
    -d "{\"model\":\"sim-bench\",\"messages\":[{\"role\":\"user\",\"content\":\"req$i curl check\"}],\"max_tokens\":$OSL,\"ignore_eos\":true,\"stream\":true}"
done > "$OUT/curl-ttft.txt"
echo "== concurrency 1: lockgate bench TTFT p50 vs curl time_starttransfer median (ms)"
.venv/bin/python -c "import json,statistics,sys; s=json.load(open(sys.argv[1]))['points'][0]['stats']['ttft']; \
c=[float(x) for x in open(sys.argv[2])]; print(f'lockgate bench {s[\"p50\"]*1e3:.2f}  curl {statistics.median(c)*1e3:.2f}')" \
  "$OUT/lockgate-c1/summary.json" "$OUT/curl-ttft.txt" | tee "$OUT/curl-check.md"

# Each tool's own overhead: aiperf against the same zero-latency target lockgate's self-check uses.
for shape in closed open; do
  if [ $shape = closed ]; then theirs=(--concurrency "$CONC"); else theirs=(--request-rate "$RATE" --arrival-pattern poisson); fi
  "$AIPERF_VENV/bin/aiperf" profile --model zero --url http://127.0.0.1:8101 --endpoint-type chat --streaming \
    "${theirs[@]}" --request-count 120 --warmup-request-count "$WARMUP" --isl "$ISL" --osl "$OSL" \
    --use-legacy-max-tokens --use-server-token-count --tokenizer "$OUT/word-tokenizer" --random-seed 0 \
    --artifact-dir "$OUT/aiperf-zero-$shape" > "$OUT/aiperf-zero-$shape.log" 2>&1
done
echo "== each tool against a zero-latency target"
.venv/bin/python scripts/compare_aiperf.py --overhead "$OUT/lockgate-closed/summary.json" \
  "$OUT/aiperf-zero-closed/profile_export_aiperf.json" "$OUT/aiperf-zero-open/profile_export_aiperf.json" \
  | tee "$OUT/overhead.md"
.venv/bin/python scripts/compare_aiperf.py --overhead "$OUT/lockgate-open/summary.json" | tail -n +3 | tee -a "$OUT/overhead.md"
