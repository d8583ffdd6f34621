"""Shared by the benchmark scripts: a zero-latency simulator config, wrk runs, waiting for a server."""

from __future__ import annotations

import re
import subprocess
import time
from pathlib import Path

import httpx

# The simulator at zero latency, so what a benchmark measures is the HTTP server and the gateway.
ZERO_LATENCY_CONFIG = """
[auth]
enabled = false
[limits]
max_queue_depth = 100000
[models.m]
max_output_tokens = 64
backends = [{ backend = "sim" }]
[backends.sim]
kind = "sim"
options = { ttft_ms = 0, tpot_ms = 0, batch_capacity = 1024 }
"""

LUA = """
wrk.method = "POST"
wrk.body = '{"model":"m","messages":[{"role":"user","content":"hi"}],"max_tokens":%d,"stream":%s,"ignore_eos":true}'
wrk.headers["Content-Type"] = "application/json"
"""


def wrk(url: str, script: Path, duration: int, connections: int) -> tuple[float, float, float]:
    """Requests/s, p50 ms and p99 ms of one wrk run."""
    out = subprocess.run(["wrk", "-t2", f"-c{connections}", f"-d{duration}s", "--latency", "-s", str(script), url],
                         capture_output=True, text=True, check=True).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]

    def pct(p: str) -> float:
        m = re.search(rf"\s{p}%\s+([\d.]+)(us|ms|s)", out)
        assert m, out
        return float(m.group(1)) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[m.group(2)]

    return rps, pct("50"), pct("99")


def wait_healthy(port: int, tries: int = 100) -> bool:
    for _ in range(tries):
        try:
            httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=0.5)
            return True
        except httpx.HTTPError:
            time.sleep(0.1)
    return False
