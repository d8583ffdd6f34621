"""The tiny random Llama the in-process engine tests run on, built once and cached on disk.

The cache key hashes the build code and the engine versions, so a change to either rebuilds. Builds go to a
temporary folder renamed into place, so test runs in parallel worktrees never see half a model.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable
from importlib.metadata import version
from pathlib import Path

import backends.inproc.random_model as random_model
import backends.onnx.export as export
from backends.inproc.random_model import LlamaShape, build_random_llama

SHAPE = LlamaShape(hidden=128, intermediate=256, layers=2, heads=4, kv_heads=2, vocab=400, max_position=512)


def _cache_root() -> Path:
    return Path(os.environ.get("LOCKGATE_MODEL_CACHE", Path.home() / ".cache" / "lockgate" / "models"))


def _key(*parts: str) -> str:
    digest = hashlib.sha256()
    for part in parts:
        digest.update(part.encode())
    return digest.hexdigest()[:16]


def _atomic_build(target: Path, build: Callable[[Path], object]) -> Path:
    if (target / ".complete").exists():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=target.name + ".", dir=target.parent))
    try:
        build(tmp)
        (tmp / ".complete").touch()
        try:
            tmp.rename(target)
        except OSError:  # another run finished first: use theirs
            if not (target / ".complete").exists():
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return target


def tiny_hf_model() -> Path:
    source = Path(random_model.__file__).read_text() + repr(SHAPE)
    key = _key(source, version("transformers"), version("tokenizers"), version("torch"))
    return _atomic_build(_cache_root() / f"tiny-llama-{key}", lambda d: build_random_llama(d, SHAPE))


def tiny_onnx_model() -> Path:
    hf = tiny_hf_model()
    key = _key(hf.name, Path(export.__file__).read_text(), version("onnxruntime-genai"))

    def build(out: Path) -> None:
        # Through the real CLI, as a user would run it.
        subprocess.run([sys.executable, "-m", "gateway.cli", "models", "export-onnx", str(hf), str(out)],
                       check=True, capture_output=True)

    return _atomic_build(_cache_root() / f"tiny-llama-onnx-{key}", build)
