"""Gateway configs serving the tiny model on the in-process engines."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from gateway.config import Config, parse_config
from tests.support.configs import toml_value

MAX_MODEL_LEN = 160


def inproc_config(hf_dir: Path, onnx_dir: Path, **overrides: Any) -> Config:
    """Models ``tiny-hf`` (kind ``hf``), ``tiny-onnx`` (kind ``onnx``, lockgate's continuous batching) and
    ``tiny-onnx-genai`` (kind ``onnx`` on onnxruntime-genai's Engine): the same weights behind all three."""
    common = {"max_model_len": MAX_MODEL_LEN, "max_batch_size": 8, "max_waiting": 16} | overrides
    backends = {
        "hf": ("hf", {"model": str(hf_dir), **common}),
        "onnx": ("onnx", {"model": str(onnx_dir), **common}),
        # Static batching admits nothing into a running batch: a wide gather window lets the concurrent test's
        # requests, which arrive over several ms on a busy 2-core machine, start together.
        "onnx-genai": ("onnx", {"model": str(onnx_dir), "batching": "genai", "gather_ms": 100.0, **common}),
    }
    # Backends load their model in the background and are routable once a health check has seen them ready.
    lines = ["[auth]", "enabled = false", "[limits]", "max_queue_depth = 64", "[routing]", "health_interval_s = 0.2"]
    for name in backends:
        lines += [f"[models.tiny-{name}]", f"max_context = {MAX_MODEL_LEN}", "max_output_tokens = 128",
                  f'backends = [{{ backend = "{name}", weight = 1 }}]']
    for name, (kind, options) in backends.items():
        lines += [f"[backends.{name}]", f'kind = "{kind}"', f"options = {toml_value(options)}"]
    return parse_config("\n".join(lines) + "\n", source="<inproc test>")
