"""`lockgate sim-server` processes (vLLM and SGLang protocol replicas) behind a gateway running the A/B
example config: the whole path of a real deployment, with the simulator in place of the engines."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import openai
import pytest

from gateway.config import parse_config
from tests.support.live import LiveServer
from tests.support.procs import ROOT, Process, free_port, lockgate


@pytest.fixture
def replicas(tmp_path: Path) -> Iterator[dict[str, int]]:
    ports = {"vllm": free_port(), "sglang": free_port()}
    procs = [Process(["sim-server", "--protocol", proto, "--port", str(port), "--model", "llama-3.1-8b",
                      "--ttft-ms", "2", "--tpot-ms", "1"], tmp_path / f"{proto}.log")
             for proto, port in ports.items()]
    try:
        for proc, port in zip(procs, ports.values(), strict=True):
            proc.wait_http(f"http://127.0.0.1:{port}/health")
        yield ports
    finally:
        for proc in procs:
            proc.stop()


def test_sim_server_says_it_is_a_protocol_replica() -> None:
    out = lockgate("sim-server", "--help").stdout
    assert "protocol replica" in out
    assert "not an engine" in out


def test_ab_example_splits_one_model_across_vllm_and_sglang_replicas(replicas: dict[str, int]) -> None:
    text = (ROOT / "examples" / "ab-vllm-sglang.toml").read_text()
    text = text.replace("127.0.0.1:8100", f"127.0.0.1:{replicas['vllm']}")
    text = text.replace("127.0.0.1:30000", f"127.0.0.1:{replicas['sglang']}")
    with LiveServer(parse_config(text, source="ab-vllm-sglang.toml")) as gw:
        seen: dict[str, int] = {}
        for i in range(40):
            resp = httpx.post(f"{gw.url}/v1/chat/completions", timeout=30, json={
                "model": "llama-3.1-8b", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 4,
                "user": f"user-{i}"})
            assert resp.status_code == 200, resp.text
            assert resp.json()["usage"]["completion_tokens"] == 4
            backend = resp.headers["x-lockgate-backend"]
            seen[backend] = seen.get(backend, 0) + 1
        assert set(seen) == {"vllm", "sglang"}
        assert seen["vllm"] > seen["sglang"]  # 70/30 weights
        sdk = openai.OpenAI(base_url=f"{gw.url}/v1", api_key="x", max_retries=0)
        chunks = list(sdk.completions.create(model="llama-3.1-8b", prompt="tell me", max_tokens=5, stream=True,
                                             extra_body={"ignore_eos": True}))
        assert "".join(c.choices[0].text for c in chunks if c.choices)
