"""What telemetry costs: the same lockgate + zero-latency simulator with telemetry off, with the default
Prometheus metrics, and with tracing exported over OTLP/HTTP to a local receiver.

Load: wrk on loopback, streamed 16-token chat completions. Rounds interleave the configurations (A B C A B C
...) so machine noise spreads over all of them; medians are reported.
Run: .venv/bin/python bench/telemetry_overhead.py [--rounds 3] [--duration 6]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from bench.common import LUA, ZERO_LATENCY_CONFIG, wait_healthy, wrk
from tests.support.otlp import OtlpReceiver

BASE = ZERO_LATENCY_CONFIG + "[telemetry]\n"
VARIANTS = {
    "off (no-op tracer, no metrics)": 'prometheus = false\ntraces = "none"\n',
    "default (Prometheus metrics)": 'prometheus = true\ntraces = "none"\n',
    "metrics + OTLP traces": 'prometheus = true\ntraces = "otlp"\notlp_endpoint = "{otlp}"\n',
}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--duration", type=int, default=6)
    ap.add_argument("--connections", type=int, default=16)
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp())
    script = tmp / "s.lua"
    script.write_text(LUA % (16, "true"))
    results: dict[str, list[tuple[float, float]]] = {v: [] for v in VARIANTS}
    with OtlpReceiver() as otlp:
        for _ in range(args.rounds):
            for i, (label, extra) in enumerate(VARIANTS.items()):
                cfg = tmp / f"{i}.toml"
                cfg.write_text(BASE + extra.format(otlp=otlp.url))
                port = 18600 + i
                proc = subprocess.Popen([sys.executable, "-m", "gateway.cli", "serve", "--config", str(cfg),
                                         "--port", str(port), "--log-level", "warning"],
                                        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
                try:
                    wait_healthy(port)
                    url = f"http://127.0.0.1:{port}/v1/chat/completions"
                    wrk(url, script, 1, args.connections)
                    rps, p50, _ = wrk(url, script, args.duration, args.connections)
                    results[label].append((rps, p50))
                finally:
                    proc.terminate()
                    proc.wait(10)
        spans = len(otlp.spans)
    base = statistics.median(r for r, _ in results["off (no-op tracer, no metrics)"])
    print(f"wrk -c{args.connections} -d{args.duration}s x {args.rounds} interleaved rounds, streamed 16 tokens")
    print(f"{'telemetry':34} {'req/s (median)':>15} {'vs off':>8} {'p50 ms':>8}")
    for label, runs in results.items():
        rps = statistics.median(r for r, _ in runs)
        p50 = statistics.median(p for _, p in runs)
        print(f"{label:34} {rps:15.0f} {rps / base:8.2f} {p50:8.2f}")
    print(f"(OTLP receiver got {spans} spans)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
