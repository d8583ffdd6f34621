"""Build the bake-off model: random-init weights with Qwen2.5-1.5B's sizes on a Llama config, in bf16.

The tokenizer is a byte-level BPE trained so that every word of `lockgate bench`'s synthetic vocabulary is one
token: a prompt of N words is then N tokens plus its unique tag's 5-7 tokens, so prompt lengths are known
(docs/gpu-bakeoff.md). Weight values don't change an engine's cost. The output layer has the BPE's 32,000 rows,
not Qwen's 151,936 (GPU.md: a Qwen2 config makes transformers pick a tokenizer class that breaks this BPE).

    python3 bench/gpu/build_model.py --out /tmp/bake/model --device cuda
"""

from __future__ import annotations

import argparse
from pathlib import Path

from backends.inproc.random_model import LlamaShape, build_random_llama
from loadtest.dataset import _VOCAB

QWEN25_15B = LlamaShape(hidden=1536, intermediate=8960, layers=28, heads=12, kv_heads=2, vocab=32000,
                        max_position=4096, dtype="bfloat16")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--tiny", action="store_true", help="a 2-layer model of hidden 128 (CPU rehearsal)")
    args = parser.parse_args()
    shape = LlamaShape(vocab=4000, max_position=4096) if args.tiny else QWEN25_15B
    build_random_llama(args.out, shape, sentences=200_000, pseudo_words=60_000, common=_VOCAB, device=args.device)
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(args.out)
    ids = tok.encode("req0x1 time year people way day")
    if not ids or any(len(tok.encode(" " + w, add_special_tokens=False)) != 1 for w in _VOCAB):
        raise SystemExit(f"tokenizer check failed: {ids}")
    print(f"model in {args.out}: vocab {len(tok)}, 'req0x1 time year people way day' -> {len(ids)} tokens")


if __name__ == "__main__":
    main()
