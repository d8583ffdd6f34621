"""Which ASGI server should ``lockgate serve`` use? Measures the same lockgate app under each.

Load: wrk (a C client, so the Python server is the bottleneck) on loopback, one connection set at a time,
against the simulator with zero latency, so what is measured is the HTTP server + gateway, not the engine.
Run: .venv/bin/python bench/asgi_servers.py [--duration 10] [--connections 32]
Needs: wrk (apt-get install wrk), granian (pip install granian) for the comparison.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from bench.common import LUA, ZERO_LATENCY_CONFIG, wait_healthy, wrk

SERVERS = {
    "uvicorn+uvloop+httptools (lockgate serve)": ["{py}", "-m", "gateway.cli", "serve", "--config", "{cfg}",
                                                  "--port", "{port}", "--log-level", "warning"],
    "uvicorn+asyncio+h11": ["{py}", "-m", "uvicorn", "--factory", "gateway.asgi:create", "--port", "{port}",
                            "--loop", "asyncio", "--http", "h11", "--log-level", "warning", "--no-access-log"],
    "granian (rust, 1 worker, uvloop)": ["{py}", "-m", "granian", "--interface", "asgi", "--factory",
                                         "--port", "{port}", "--loop", "uvloop", "--workers", "1",
                                         "--log-level", "warning", "--no-ws", "gateway.asgi:create"],
}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--duration", type=int, default=10)
    ap.add_argument("--connections", type=int, default=32)
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp())
    cfg = tmp / "bench.toml"
    cfg.write_text(ZERO_LATENCY_CONFIG)
    scripts = {}
    for name, tokens, stream in (("non-stream 16 tok", 16, "false"), ("stream 16 tok", 16, "true")):
        scripts[name] = tmp / f"{tokens}-{stream}.lua"
        scripts[name].write_text(LUA % (tokens, stream))
    print(f"wrk -t2 -c{args.connections} -d{args.duration}s, lockgate + simulator at zero latency, loopback\n")
    print(f"{'server':44} {'workload':18} {'req/s':>8} {'p50 ms':>8} {'p99 ms':>8}")
    for label, template in SERVERS.items():
        port = 18500 + len(label) % 50
        cmd = [a.format(py=sys.executable, cfg=cfg, port=port) for a in template]
        proc = subprocess.Popen(cmd, env={**os.environ, "LOCKGATE_CONFIG": str(cfg)}, stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL)
        try:
            if not wait_healthy(port):
                print(f"{label:44} did not start")
                continue
            for workload, script in scripts.items():
                url = f"http://127.0.0.1:{port}/v1/chat/completions"
                wrk(url, script, 2, args.connections)  # warm-up
                rps, p50, p99 = wrk(url, script, args.duration, args.connections)
                print(f"{label:44} {workload:18} {rps:8.0f} {p50:8.2f} {p99:8.2f}", flush=True)
        finally:
            proc.terminate()
            proc.wait(10)
    return 0


if __name__ == "__main__":
    sys.exit(main())
