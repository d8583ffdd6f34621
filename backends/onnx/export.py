"""``lockgate models export-onnx``: wraps onnxruntime-genai's model builder.

The builder imports ``onnx_ir`` and ``onnxscript`` without declaring them (the ``onnx`` extra does), and its
tokenizer loader rejects a WordLevel ``tokenizer.json``: we check that before a long export fails late.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

EXAMPLES = """examples:
  lockgate models export-onnx ./my-llama ./my-llama-onnx
  lockgate models export-onnx ./my-llama ./my-llama-onnx --precision fp16 --execution-provider cuda
  lockgate models export-onnx ./my-llama ./out -- --extra_options use_paged_attention=true
"""


def builder_command(hf_dir: Path, out: Path, precision: str, provider: str, extra: list[str]) -> list[str]:
    return [sys.executable, "-m", "onnxruntime_genai.models.builder", "-i", str(hf_dir), "-o", str(out),
            "-p", precision, "-e", provider, *extra]


def check_tokenizer(hf_dir: Path) -> str | None:
    """Return why onnxruntime-genai will refuse this model's tokenizer, or None."""
    path = hf_dir / "tokenizer.json"
    if not path.is_file():
        return f"{path} is missing (onnxruntime-genai needs a tokenizers-format tokenizer)"
    model_type = json.loads(path.read_text()).get("model", {}).get("type")
    if model_type == "WordLevel":
        return f"{path} is a WordLevel tokenizer, which onnxruntime-genai rejects; use BPE (e.g. byte-level BPE)"
    return None


def export_onnx(args: argparse.Namespace) -> int:
    hf_dir, out = Path(args.hf_dir), Path(args.out)
    problem = check_tokenizer(hf_dir)
    if problem is not None:
        print(f"lockgate: {problem}", file=sys.stderr)
        return 2
    extra = [a for a in args.builder_args if a != "--"]
    return subprocess.call(builder_command(hf_dir, out, args.precision, args.execution_provider, extra))


def add_models_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    models = sub.add_parser("models", help="prepare models for the in-process engines")
    msub = models.add_subparsers(dest="models_command", metavar="SUBCOMMAND", required=True)
    export = msub.add_parser(
        "export-onnx", help="export a Hugging Face model directory for the onnx backend (onnxruntime-genai)",
        epilog=EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter)
    export.add_argument("hf_dir", metavar="HF_DIR", help="local Hugging Face model directory")
    export.add_argument("out", metavar="OUT", help="output directory (genai_config.json, model.onnx, tokenizer)")
    export.add_argument("--precision", "-p", choices=["fp32", "fp16", "bf16", "int4"], default="fp32")
    export.add_argument("--execution-provider", "-e", choices=["cpu", "cuda"], default="cpu")
    export.add_argument("builder_args", nargs=argparse.REMAINDER,
                        help="after --: passed to onnxruntime_genai.models.builder unchanged")
    export.set_defaults(func=export_onnx)
