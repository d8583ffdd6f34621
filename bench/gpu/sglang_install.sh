#!/usr/bin/env bash
# On the GPU machine: install the SGLang wheels gathered in $SGST (stage.sh sglang) into $SGSITE, apart from vLLM's
# $SITE (SGLang pins its own transformers, tokenizers, pydantic, ...). setup.sh starts this in the background when
# the wheels are there; run.sh sglang-start runs it (or waits for it) before it starts the server.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
source "$ROOT/bench/gpu/env.sh"
[ ! -f "$SGSITE/.installed" ] || exit 0
cd "$SGST"
for first in *.part.00; do
  [ -e "$first" ] || continue
  name=${first%.part.00}
  cat "$name".part.* > "$name" && rm "$name".part.*
done
started=$(date +%s)
"$PY" -m pip install -q --no-index --no-deps --no-compile --target "$SGSITE" "$SGST"/*.whl
touch "$SGSITE/.installed"
echo "sglang installed in $(( $(date +%s) - started )) s: $(du -sh "$SGSITE" | cut -f1)"
