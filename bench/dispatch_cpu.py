"""CPU per streamed request in each lockgate process: the load-independent figure behind bench/dispatch.py.

Starts `lockgate serve` (embedded) and/or `lockgate gateway` + `lockgate worker` (Redis) with the same config as
bench/dispatch.py, warms them, then sends a fixed number of streamed requests (--requests, Poisson at --rate)
and reads each process's utime + stime from /proc before and after. Wall-clock latency on a shared machine
varies with the neighbours' load; CPU seconds per request hardly do. With --profile DIR, py-spy records each
process during the measured requests (flame graphs as SVG; py-spy must be installed in the venv).

Run: .venv/bin/python bench/dispatch_cpu.py [--requests 2000] [--rate 100] [--targets embedded,redis,local]
     .venv/bin/python bench/dispatch_cpu.py --targets redis --engine vllm-replica   # a worker on the HTTP path
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import uvloop

# This checkout first (also when run from a copy of another revision, to compare).
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.dispatch import (
    Procs,
    Sample,
    add_engine_option,
    delete_prefix,
    free_port,
    http_request,
    start_lockgate,
    wait_ready,
    warm,
    write_target_config,
)


async def drive(port: int, n: int, rate: float, tokens: int, seed: int) -> list[Sample]:
    rng = random.Random(seed)
    samples: list[Sample] = []

    async def one(i: int, at: float) -> None:
        await asyncio.sleep(max(0.0, at - (time.perf_counter() - t0)))
        sample = Sample(index=i)
        await http_request(port, f"cpu {i} {rng.getrandbits(32):08x}", tokens, sample, time.perf_counter())
        samples.append(sample)

    at, times = 0.0, []
    for _ in range(n):
        at += rng.expovariate(rate)
        times.append(at)
    t0 = time.perf_counter()
    await asyncio.gather(*(one(i, t) for i, t in enumerate(times)))
    return samples


def profile(procs: Procs, outdir: Path, seconds: float, fmt: str) -> list[subprocess.Popen[bytes]]:
    spy = shutil.which("py-spy", path=str(Path(sys.executable).parent)) or shutil.which("py-spy")
    if spy is None:
        raise SystemExit("--profile needs py-spy (pip install py-spy)")
    outdir.mkdir(parents=True, exist_ok=True)
    suffix = {"flamegraph": "svg", "raw": "txt", "speedscope": "json"}[fmt]
    return [subprocess.Popen([spy, "record", "--native", "-r", "250", "-d", str(int(seconds) + 1), "-f", fmt, "-o",
                              str(outdir / f"{procs.names[p.pid]}.{suffix}"), "--pid", str(p.pid)],
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL) for p in procs.procs]


async def measure(name: str, procs: Procs, port: int, args: argparse.Namespace) -> str:
    await wait_ready(port)
    await warm(port, args.tokens)
    spies = profile(procs, Path(args.profile) / name, args.requests / args.rate,
                    args.profile_format) if args.profile else []
    before = procs.cpu_s()
    load0 = os.getloadavg()[0]
    samples = await drive(port, args.requests, args.rate, args.tokens, args.seed)
    after = procs.cpu_s()
    for spy in spies:
        spy.wait()
    errors = sum(1 for s in samples if s.error is not None)
    parts = ", ".join(f"{k.rsplit('-', 1)[0]} {(v - before.get(k, 0.0)) * 1000 / len(samples):.3f}"
                      for k, v in after.items())
    kinds = sorted({s.error for s in samples if s.error is not None})[:3]
    return (f"{name:<9} {len(samples)} requests, {errors} errors{f' {kinds}' if kinds else ''}; CPU ms per "
            f"request: {parts} (load average {load0:.2f} -> {os.getloadavg()[0]:.2f})")


async def main(args: argparse.Namespace) -> None:
    targets = args.targets.split(",")
    lines = []
    with tempfile.TemporaryDirectory(prefix="lockgate-cpu-") as tmp:
        tmpdir = Path(tmp)
        prefix = f"lgcpu{uuid.uuid4().hex[:8]}"
        procs = Procs(tmpdir)
        try:
            for round_ in range(args.rounds):
                for name in targets:
                    cfg = tmpdir / f"{name}.toml"
                    await write_target_config(cfg, procs, args, prefix, name)
                    port = free_port()
                    start_lockgate(procs, name, cfg, port, args.procs)
                    lines.append(f"round {round_ + 1} " + await measure(name, procs, port, args))
                    print(lines[-1], flush=True)
                    procs.stop()
        finally:
            procs.stop()
            delete_prefix(args.redis, prefix)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests", type=int, default=2000, help="measured requests per target")
    parser.add_argument("--rate", type=float, default=100.0, help="requests per second (Poisson)")
    parser.add_argument("--tokens", type=int, default=16)
    parser.add_argument("--ttft-ms", type=float, default=20.0)
    parser.add_argument("--tpot-ms", type=float, default=10.0)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--rounds", type=int, default=1, help="repeat the targets, interleaved")
    parser.add_argument("--redis", default=os.environ.get("LOCKGATE_REDIS_URL", "redis://127.0.0.1:6379/0"))
    parser.add_argument("--dispatch-option", action="append", metavar="KEY=VALUE",
                        help="a [dispatch] setting (TOML), repeatable, e.g. coalesce_ms=2")
    parser.add_argument("--targets", default="embedded,redis", help="comma-separated: embedded,redis,local")
    add_engine_option(parser)
    parser.add_argument("--procs", type=int, default=1,
                        help="processes per lockgate role: N serve, or N gateways + N workers (shared port)")
    parser.add_argument("--profile", help="record py-spy flame graphs of each process into this directory")
    parser.add_argument("--profile-format", default="flamegraph", choices=["flamegraph", "raw", "speedscope"],
                        help="py-spy output: flamegraph (SVG), raw (collapsed stacks, text) or speedscope")
    uvloop.run(main(parser.parse_args()))
