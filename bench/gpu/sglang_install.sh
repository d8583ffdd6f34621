#!/usr/bin/env bash
# On the GPU machine: install the SGLang wheels gathered in $SGST (stage.sh sglang) into $SGSITE, apart from vLLM's
# $SITE (SGLang pins its own transformers, tokenizers, pydantic, ...). setup.sh starts this in the background when
# the wheels are there; run.sh sglang-start runs it (or waits for it) before it starts the server.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
source "$ROOT/bench/gpu/env.sh"
[ ! -f "$SGSITE/.installed" ] || exit 0
started=$(date +%s)
install_wheels "$SGST" "$SGSITE"
echo "sglang installed in $(( $(date +%s) - started )) s: $(du -sh "$SGSITE" | cut -f1)"
