"""The ``lockgate`` command: help, version, config checking, key hashing, and ``serve`` end to end."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import openai
import pytest

from gateway import __version__
from tests.support.configs import sim_config_text
from tests.support.procs import Process, free_port, lockgate


def test_version_and_help_with_examples() -> None:
    assert lockgate("--version").stdout.strip() == f"lockgate {__version__}"
    top = lockgate("--help").stdout
    assert "examples:" in top
    assert "lockgate serve" in top
    for sub in (["serve"], ["config", "check"], ["config", "hash-key"]):
        out = lockgate(*sub, "--help")
        assert out.returncode == 0
        assert "example" in out.stdout


def test_no_command_prints_help_and_fails() -> None:
    out = lockgate()
    assert out.returncode == 2
    assert "usage: lockgate" in out.stdout


def test_config_check_ok_and_errors(tmp_path: Path) -> None:
    good = tmp_path / "good.toml"
    good.write_text(sim_config_text())
    ok = lockgate("config", "check", str(good))
    assert ok.returncode == 0
    assert "OK" in ok.stdout
    bad = tmp_path / "bad.toml"
    bad.write_text(sim_config_text().replace('kind = "sim"', 'kind = "sim"\nconcurrency = -1'))
    err = lockgate("config", "check", str(bad))
    assert err.returncode == 2
    line = next(n for n, text in enumerate(bad.read_text().splitlines(), 1) if "concurrency" in text)
    assert f"{bad}:{line}: backends.sim.concurrency: Expected `int` >= 1" in err.stderr
    assert "Traceback" not in err.stderr


def test_hash_key_reads_stdin() -> None:
    out = lockgate("config", "hash-key", "-", input="my-secret\n")
    assert out.stdout.strip() == hashlib.sha256(b"my-secret").hexdigest()


def test_default_config_prints_and_checks(tmp_path: Path) -> None:
    text = lockgate("config", "default").stdout
    (tmp_path / "d.toml").write_text(text)
    assert lockgate("config", "check", str(tmp_path / "d.toml")).returncode == 0


def test_serve_default_config_with_the_sdk(tmp_path: Path) -> None:
    port = free_port()
    proc = Process(["serve", "--port", str(port)], tmp_path / "serve.log")
    try:
        proc.wait_http(f"http://127.0.0.1:{port}/readyz")
        c = openai.OpenAI(base_url=f"http://127.0.0.1:{port}/v1", api_key="anything", max_retries=0)
        assert [m.id for m in c.models.list().data] == ["sim-small"]
        resp = c.chat.completions.create(model="sim-small", messages=[{"role": "user", "content": "hi"}],
                                         max_tokens=4)
        assert resp.usage is not None
        assert resp.usage.completion_tokens == 4
    finally:
        code = proc.stop()
    assert code == 0, proc.output()
    assert "Traceback" not in proc.output()


def test_json_logs_never_contain_api_keys(tmp_path: Path) -> None:
    port = free_port()
    config = tmp_path / "c.toml"
    config.write_text(sim_config_text(auth_keys=[]))
    secret = "sk-supersecret-key-123456"
    proc = Process(["serve", "--config", str(config), "--port", str(port), "--log-format", "json",
                    "--log-level", "debug"], tmp_path / "serve.log", env={"LOCKGATE_API_KEYS": secret})
    try:
        proc.wait_http(f"http://127.0.0.1:{port}/healthz")
        c = openai.OpenAI(base_url=f"http://127.0.0.1:{port}/v1", api_key=secret, max_retries=0)
        c.chat.completions.create(model="sim-small", messages=[{"role": "user", "content": "hi"}], max_tokens=2)
        with pytest.raises(openai.AuthenticationError):
            openai.OpenAI(base_url=f"http://127.0.0.1:{port}/v1", api_key=secret + "x", max_retries=0).models.list()
    finally:
        proc.stop()
    lines = [line for line in proc.output().splitlines() if line.strip()]
    assert lines
    records = [json.loads(line) for line in lines]  # every line is one JSON object
    assert {"ts", "level", "logger", "msg"} <= set(records[0])
    assert secret not in proc.output()
