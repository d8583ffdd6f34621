"""bench/dispatch.py's config: what bench/dispatch.py and bench/dispatch_cpu.py start lockgate with."""

from __future__ import annotations

import argparse
import asyncio
import os
import uuid
from pathlib import Path

from bench.dispatch import Procs, delete_prefix, start_target, write_config
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


def test_target_local_is_redis_dispatch_with_the_local_start(tmp_path: Path) -> None:
    path = tmp_path / "c.toml"
    write_config(path, args(), "p", "redis://127.0.0.1:6379/0", "local")
    dispatch = load_config(path).dispatch
    assert dispatch.kind == "redis"
    assert dispatch.local
    assert dispatch.coalesce_ms == 2  # --dispatch-option still applies
    write_config(path, args(), "p", "redis://127.0.0.1:6379/0", "redis")
    assert not load_config(path).dispatch.local


def test_with_an_engine_url_the_backend_is_the_vllm_adapter_on_it(tmp_path: Path) -> None:
    # dispatch_cpu.py --engine vllm-replica: the worker reads real HTTP streams, as in production.
    path = tmp_path / "c.toml"
    write_config(path, args(), "p", "redis://127.0.0.1:6379/0", "redis", engine_url="http://127.0.0.1:9")
    backend = load_config(path).backends["sim"]
    assert backend.kind == "vllm"
    assert backend.options == {"url": "http://127.0.0.1:9", "model": "m"}


def test_engine_vllm_replica_puts_the_worker_on_the_http_path(tmp_path: Path) -> None:
    # bench/dispatch.py --engine vllm-replica: a replica of the target's own beside its gateway and worker, and the
    # warm-up stream (start_target's) went through the adapter to it.
    redis_url = os.environ.get("LOCKGATE_TEST_REDIS_URL", "redis://127.0.0.1:6379/9")
    namespace = argparse.Namespace(procs=1, workers=None, ttft_ms=5.0, tpot_ms=1.0, tokens=4, dispatch_option=None,
                                   engine="vllm-replica", redis=redis_url)
    prefix = f"lgtest{uuid.uuid4().hex[:8]}"
    procs = Procs(tmp_path)
    try:
        port = asyncio.run(start_target("redis", procs, tmp_path, namespace, prefix))
        assert port > 0
        assert sorted(procs.names.values()) == ["gateway", "sim-server", "worker"]
        backend = load_config(tmp_path / "redis.toml").backends["sim"]
        assert backend.kind == "vllm"
        assert backend.options["url"].startswith("http://127.0.0.1:")
    finally:
        procs.stop()
        delete_prefix(redis_url, prefix)
