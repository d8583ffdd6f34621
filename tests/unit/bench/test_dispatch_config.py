"""bench/dispatch.py's config: what bench/dispatch.py and bench/dispatch_cpu.py start lockgate with."""

from __future__ import annotations

import argparse
from pathlib import Path

from bench.dispatch import write_config
from gateway.config.loader import load_config


def args() -> argparse.Namespace:
    return argparse.Namespace(procs=1, ttft_ms=20.0, tpot_ms=5.0, dispatch_option=["coalesce_ms = 2"])


def test_the_default_backend_is_the_in_process_simulator(tmp_path: Path) -> None:
    path = tmp_path / "c.toml"
    write_config(path, args(), "p", "redis://127.0.0.1:6379/0", "redis")
    config = load_config(path)
    backend = config.backends["sim"]
    assert backend.kind == "sim"
    assert backend.options["tpot_ms"] == 5.0
    assert config.dispatch.coalesce_ms == 2


def test_with_an_engine_url_the_backend_is_the_vllm_adapter_on_it(tmp_path: Path) -> None:
    # dispatch_cpu.py --engine vllm-replica: the worker reads real HTTP streams, as in production.
    path = tmp_path / "c.toml"
    write_config(path, args(), "p", "redis://127.0.0.1:6379/0", "redis", engine_url="http://127.0.0.1:9")
    backend = load_config(path).backends["sim"]
    assert backend.kind == "vllm"
    assert backend.options == {"url": "http://127.0.0.1:9", "model": "m"}
