"""What does the dispatch add to latency? The same seeded Poisson load against each target, in one run:

  (a) engine    the simulated engine alone over HTTP + SSE (`lockgate sim-server --protocol vllm`): the reference
  (b) embedded  `lockgate serve` (embedded dispatch) in a subprocess, over HTTP + SSE
  (c) redis     `lockgate gateway` + `lockgate worker` subprocesses sharing Redis, over HTTP + SSE
  (d) local     `lockgate serve` with Redis dispatch and `dispatch.local` (the job starts on the process's own
                worker and is recorded in Redis; its events stay in the process), over HTTP + SSE
      sim       (optional) the simulator driven in this process, no HTTP: shows what HTTP + client cost in (a)
(b), (c) and (d) run the simulator in their worker (or serve) process; with --engine vllm-replica they run the `vllm`
adapter over HTTP to a replica process of their own, as beside a real engine.

Each request streams exactly --tokens tokens (ignore_eos). TTFT = first token-carrying chunk - send;
E2E = last token chunk - send (docs/METRICS.md). Printed: p50/p99 per target and what (b) and (c) add over (a),
errors, the client's send lag, and CPU per request of every process, the load generator's own included.
The load generator is a minimal asyncio HTTP/1.1 client (one connection per request) used the same way for
(a), (b) and (c), so its own cost cancels out of the differences. --rounds N repeats (a), (b), (c) N times,
each round in the reverse order of the previous one, so that a change in the machine's load hits all alike.

Run: .venv/bin/python bench/dispatch.py [--rate 200] [--duration 10] [--rounds 2] [--redis redis://...]
     .venv/bin/python bench/dispatch.py --rate 2 --engine vllm-replica   # the worker on the HTTP path, as on a GPU
This is a benchmark, not a test: it asserts nothing, it prints what it measured.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import resource
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import redis
import uvloop

from backends.events import Delta
from backends.request import ChatMessage, GenerationRequest
from backends.sim.engine import SimBackend
from backends.sim.options import SimOptions

ROOT = Path(__file__).resolve().parents[1]
TOKEN_MARK = b'"content":"'
EMPTY_MARK = b'"content":""'


@dataclass
class Sample:
    index: int = -1
    """Position in the schedule (samples of the warm-up window are dropped by it)."""
    ttft: float | None = None
    e2e: float | None = None
    lag: float = 0.0
    """t_send - t_sched: how late the client itself was."""
    error: str | None = None


@dataclass
class Result:
    name: str
    samples: list[Sample] = field(default_factory=list)
    cpu_ms_per_request: dict[str, float] = field(default_factory=dict)
    load: tuple[float, float] = (0.0, 0.0)
    """The 1-minute load average before and after the run."""

    def ok(self) -> list[Sample]:
        return [s for s in self.samples if s.error is None and s.ttft is not None and s.e2e is not None]

    def errors(self) -> int:
        return len(self.samples) - len(self.ok())


def pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    values = sorted(values)
    k = min(len(values) - 1, max(0, round(q / 100 * (len(values) - 1))))
    return values[k]


def schedule(rate: float, duration: float, seed: int) -> list[float]:
    rng = random.Random(seed)
    t, out = 0.0, []
    while t < duration:
        t += rng.expovariate(rate)
        out.append(t)
    return out


def prompts(n: int, seed: int) -> list[str]:
    rng = random.Random(seed + 1)
    return [f"bench request {i} {rng.getrandbits(48):012x}" for i in range(n)]


# -- (a) the simulator alone ---------------------------------------------------------------------------------

async def run_sim(opts: SimOptions, times: list[float], texts: list[str], tokens: int) -> Result:
    sim = SimBackend("sim", opts)
    await sim.start()
    result = Result("sim")
    warm = GenerationRequest(request_id="w", model="m", operation="chat", max_tokens=tokens,
                             messages=(ChatMessage("user", "warm"),), extra={"ignore_eos": True})
    for _ in range(3):  # first calls pay for lazy initialisation; the HTTP targets get the same warm-up
        async for _ in sim.generate(warm):
            pass

    async def one(i: int, t_sched: float, prompt: str) -> None:
        await asyncio.sleep(max(0.0, t_sched - (time.perf_counter() - t0)))
        t_send = time.perf_counter()
        sample = Sample(index=i, lag=t_send - t0 - t_sched)
        req = GenerationRequest(request_id="b", model="m", operation="chat", max_tokens=tokens,
                                messages=(ChatMessage("user", prompt),), extra={"ignore_eos": True})
        async for event in sim.generate(req):
            if isinstance(event, Delta) and event.tokens:
                now = time.perf_counter()
                if sample.ttft is None:
                    sample.ttft = now - t_send
                sample.e2e = now - t_send
        result.samples.append(sample)

    t0 = time.perf_counter()
    await asyncio.gather(*(one(i, t, p) for i, (t, p) in enumerate(zip(times, texts, strict=True))))
    return result


# -- (b), (c) over HTTP --------------------------------------------------------------------------------------

async def http_request(port: int, prompt: str, tokens: int, sample: Sample, t_send: float) -> None:
    payload = json.dumps({"model": "m", "messages": [{"role": "user", "content": prompt}], "max_tokens": tokens,
                          "stream": True, "ignore_eos": True}).encode()
    head = (f"POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(payload)}\r\nConnection: close\r\n\r\n").encode()
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(head + payload)
        status = await reader.readline()
        if b" 200 " not in status:
            sample.error = status.decode().strip() or "no status"
            return
        seen, pending, done = 0, b"", False
        while not done:
            data = await reader.read(65536)
            if not data:
                break
            now = time.perf_counter()
            *lines, pending = (pending + data).split(b"\n")
            for line in lines:
                if not line.startswith(b"data: "):
                    continue  # chunked-encoding sizes, blank lines
                if line.startswith(b"data: [DONE]"):
                    done = True
                elif line.startswith(b'data: {"error"'):
                    sample.error = "error event"
                elif TOKEN_MARK in line and EMPTY_MARK not in line:
                    seen += 1
                    if sample.ttft is None:
                        sample.ttft = now - t_send
                    sample.e2e = now - t_send
        if seen != tokens and sample.error is None:
            sample.error = f"{seen} token chunks, expected {tokens}"
    except OSError as exc:
        sample.error = f"{type(exc).__name__}: {exc}"
    finally:
        writer.close()


def own_cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def redis_cpu_s(url: str) -> float:
    """The Redis server's own CPU seconds so far (INFO cpu): its share of a request's cost."""
    client = redis.Redis.from_url(url)
    try:
        info = client.info("cpu")
        return float(info["used_cpu_user"]) + float(info["used_cpu_sys"])
    finally:
        client.close()


async def run_http(name: str, port: int, times: list[float], texts: list[str], tokens: int,
                   procs: Procs, redis_url: str | None = None) -> Result:
    result = Result(name)
    cpu_before = procs.cpu_s()
    client_before = own_cpu_s()
    redis_before = redis_cpu_s(redis_url) if redis_url else 0.0

    async def one(i: int, t_sched: float, prompt: str) -> None:
        await asyncio.sleep(max(0.0, t_sched - (time.perf_counter() - t0)))
        t_send = time.perf_counter()
        sample = Sample(index=i, lag=t_send - t0 - t_sched)
        await http_request(port, prompt, tokens, sample, t_send)
        result.samples.append(sample)

    t0 = time.perf_counter()
    await asyncio.gather(*(one(i, t, p) for i, (t, p) in enumerate(zip(times, texts, strict=True))))
    cpu_after = procs.cpu_s()
    for k, v in cpu_after.items():  # summed over the processes of one kind (--procs)
        name = k.rsplit("-", 1)[0]
        result.cpu_ms_per_request[name] = (result.cpu_ms_per_request.get(name, 0.0)
                                           + (v - cpu_before.get(k, 0.0)) * 1000 / len(times))
    if redis_url:
        result.cpu_ms_per_request["redis-server"] = (redis_cpu_s(redis_url) - redis_before) * 1000 / len(times)
    result.cpu_ms_per_request["client"] = (own_cpu_s() - client_before) * 1000 / len(times)
    return result


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def write_config(path: Path, args: argparse.Namespace, prefix: str, redis_url: str, kind: str,
                 engine_url: str | None = None) -> None:
    """``engine_url``: the backend is the `vllm` adapter on that engine (a replica), not the in-process simulator."""
    # Dispatch settings other than the defaults, e.g. --dispatch-option coalesce_ms=2 to compare ticks.
    extra = "".join(f"{option}\n" for option in getattr(args, "dispatch_option", None) or ())
    sim = f"ttft_ms = {args.ttft_ms}, tpot_ms = {args.tpot_ms}, batch_capacity = 1024"
    backend = (f'kind = "vllm"\noptions = {{ url = "{engine_url}", model = "m" }}' if engine_url else
               f'kind = "sim"\noptions = {{ {sim} }}')
    if kind == "local":  # Redis dispatch in `lockgate serve`, with the local start
        kind, extra = "redis", f"local = true\n{extra}"
    path.write_text(f"""
[server]
shutdown_grace_s = 2
reuse_port = {"true" if args.procs > 1 else "false"}
log_level = "warning"
[auth]
enabled = false
[limits]
max_queue_depth = 100000
[models.m]
max_output_tokens = 4096
backends = [{{ backend = "sim" }}]
[backends.sim]
{backend}
[dispatch]
kind = "{kind}"
redis_url = "{redis_url}"
key_prefix = "{prefix}"
{extra}""")


class Procs:
    def __init__(self, logdir: Path) -> None:
        self.logdir = logdir
        self.procs: list[subprocess.Popen[bytes]] = []
        self.names: dict[int, str] = {}
        """pid -> lockgate command (serve, gateway, worker, sim-server)."""

    def start(self, *args: str) -> None:
        log = (self.logdir / f"{args[0]}-{len(self.procs)}.log").open("wb")
        env = {k: v for k, v in os.environ.items() if k != "LOCKGATE_REDIS_URL"}
        proc = subprocess.Popen([sys.executable, "-m", "gateway.cli", *args], stdout=log,
                                stderr=subprocess.STDOUT, cwd=ROOT, env=env)
        self.procs.append(proc)
        self.names[proc.pid] = args[0]

    def cpu_s(self) -> dict[str, float]:
        """CPU seconds (user + system) used so far by each live process, from /proc."""
        out = {}
        tick = os.sysconf("SC_CLK_TCK")
        for p in self.procs:
            try:
                fields = Path(f"/proc/{p.pid}/stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            out[f"{self.names[p.pid]}-{p.pid}"] = (int(fields[11]) + int(fields[12])) / tick
        return out

    def stop(self) -> None:
        for p in self.procs:
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
        for p in self.procs:
            try:
                p.wait(15)
            except subprocess.TimeoutExpired:
                p.kill()
        self.procs.clear()


async def wait_ready(port: int, within_s: float = 30, path: str = "/readyz") -> None:
    deadline = time.monotonic() + within_s
    while time.monotonic() < deadline:
        try:
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.write(f"GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".encode())
            line = await reader.readline()
            writer.close()
            if b" 200 " in line:
                return
        except OSError:
            pass
        await asyncio.sleep(0.1)
    raise TimeoutError(f"gateway on port {port} not ready")


async def warm(port: int, tokens: int) -> None:
    """A few requests before measuring: imports, JIT-free but cache-warm code paths, Lua scripts loaded."""
    for i in range(20):
        await http_request(port, f"warm {i}", tokens, Sample(), time.perf_counter())


def report(results: list[Result], args: argparse.Namespace, warmup: float, times: list[float]) -> str:
    def reference_of(r: Result) -> Result:
        """The engine run of the same round (rounds are measured minutes apart), else the first engine run."""
        round_ = r.name.partition("#")[2]
        engines = [e for e in results if e.name.partition("#")[0] == "engine"]
        same = [e for e in engines if e.name.partition("#")[2] == round_]
        return (same or engines or [e for e in results if e.name == "sim"] or results)[0]

    lines = [
        f"load: Poisson {args.rate:g} req/s for {args.duration:g}s (seed {args.seed}), {len(times)} requests, "
        f"{args.tokens} tokens each, streamed; sim ttft {args.ttft_ms:g} ms, tpot {args.tpot_ms:g} ms; first "
        f"{warmup:g}s excluded",
        f"configured reference: TTFT {args.ttft_ms:.1f} ms, "
        f"E2E {args.ttft_ms + (args.tokens - 1) * args.tpot_ms:.1f} ms",
        "",
        f"{'target':<10} {'n':>5} {'err':>4} {'TTFT p50':>9} {'TTFT p99':>9} {'E2E p50':>9} {'E2E p99':>9} "
        f"{'+TTFT p50':>10} {'+TTFT p99':>10} {'+E2E p50':>9} {'+E2E p99':>9} {'lag p99':>8}",
    ]
    for r in results:
        reference = reference_of(r)
        ref_ttft = [s.ttft for s in reference.ok() if s.ttft is not None]
        ref_e2e = [s.e2e for s in reference.ok() if s.e2e is not None]
        ok = r.ok()
        ttft = [s.ttft * 1000 for s in ok if s.ttft is not None]
        e2e = [s.e2e * 1000 for s in ok if s.e2e is not None]
        lag = [s.lag * 1000 for s in r.samples]
        row = (f"{r.name:<10} {len(r.samples):>5} {r.errors():>4} {pct(ttft, 50):>9.2f} {pct(ttft, 99):>9.2f} "
               f"{pct(e2e, 50):>9.2f} {pct(e2e, 99):>9.2f}")
        if r is not reference and r.name != "sim":
            row += (f" {pct(ttft, 50) - pct(ref_ttft, 50) * 1000:>10.2f}"
                    f" {pct(ttft, 99) - pct(ref_ttft, 99) * 1000:>10.2f}"
                    f" {pct(e2e, 50) - pct(ref_e2e, 50) * 1000:>9.2f}"
                    f" {pct(e2e, 99) - pct(ref_e2e, 99) * 1000:>9.2f}")
        else:
            row += f" {'':>10} {'':>10} {'':>9} {'':>9}"
        row += f" {pct(lag, 99):>8.2f}"
        lines.append(row)
    lines.append("")
    lines.append("ms; '+' columns: the target's percentile minus the reference's (the engine run of the same "
                 "round); lag: client send delay vs schedule")
    for r in results:
        if r.cpu_ms_per_request:
            cpu = ", ".join(f"{k} {v:.2f}" for k, v in r.cpu_ms_per_request.items())
            # What the whole setup asks of the machine at this rate: above the core count, it is saturated.
            cores = sum(r.cpu_ms_per_request.values()) * args.rate / 1000
            lines.append(f"CPU per request, {r.name}: {cpu} (ms, whole run incl. warm-up; load average "
                         f"{r.load[0]:.2f} -> {r.load[1]:.2f}); at {args.rate:g} req/s all of these together "
                         f"need {cores:.2f} of the machine's {os.cpu_count()} cores")
    errors = {e for r in results for s in r.samples if (e := s.error)}
    if errors:
        lines.append(f"errors seen: {sorted(errors)[:5]}")
    return "\n".join(lines)


async def main(args: argparse.Namespace) -> None:
    warmup = min(1.0, args.duration / 5)
    times = schedule(args.rate, args.duration + warmup, args.seed)
    texts = prompts(len(times), args.seed)
    keep = {i for i, t in enumerate(times) if t >= warmup}
    results: list[Result] = []
    targets = [t for t in args.targets.split(",") if t != "sim"]

    if "sim" in args.targets.split(","):
        opts = SimOptions(ttft_ms=args.ttft_ms, tpot_ms=args.tpot_ms, batch_capacity=1024)
        results.append(measured(await run_sim(opts, times, texts, args.tokens), keep))
    with tempfile.TemporaryDirectory(prefix="lockgate-bench-") as tmp:
        tmpdir = Path(args.logdir) if args.logdir else Path(tmp)
        tmpdir.mkdir(parents=True, exist_ok=True)
        prefix = f"lgbench{uuid.uuid4().hex[:8]}"
        procs = Procs(tmpdir)
        try:
            for round_ in range(args.rounds):
                order = targets if round_ % 2 == 0 else targets[::-1]
                for target in order:
                    name = target if args.rounds == 1 else f"{target}#{round_ + 1}"
                    port = await start_target(target, procs, tmpdir, args, prefix)
                    load_before = os.getloadavg()[0]
                    result = await run_http(name, port, times, texts, args.tokens, procs,
                                            args.redis if target in ("redis", "local") else None)
                    result.load = (load_before, os.getloadavg()[0])
                    results.append(measured(result, keep))
                    procs.stop()
        finally:
            procs.stop()
            delete_prefix(args.redis, prefix)
    print(report(results, args, warmup, times))


def start_lockgate(procs: Procs, target: str, cfg: Path, port: int, n: int, workers: int | None = None) -> None:
    """``serve`` (targets embedded and local), or gateways and workers (target redis), ``n`` of each (``workers``
    of those if given) on one port: with ``server.reuse_port`` (write_config sets it for n > 1) the kernel spreads
    the connections."""
    if target == "redis":
        for _ in range(n if workers is None else workers):
            procs.start("worker", "--config", str(cfg))
    for _ in range(n):
        if target == "redis":
            procs.start("gateway", "--config", str(cfg), "--port", str(port))
        else:
            procs.start("serve", "--config", str(cfg), "--port", str(port))


def delete_prefix(url: str, prefix: str) -> None:
    """Whatever the run left in Redis under its own key prefix."""
    client = redis.Redis.from_url(url)
    leftovers = list(client.scan_iter(match=f"{prefix}:*"))
    if leftovers:
        client.delete(*leftovers)
    client.close()


async def start_replica(procs: Procs, ttft_ms: float, tpot_ms: float) -> int:
    """The vLLM protocol replica (`lockgate sim-server`) at the bench's pace; its port once it answers."""
    port = free_port()
    procs.start("sim-server", "--protocol", "vllm", "--model", "m", "--port", str(port),
                "--ttft-ms", f"{ttft_ms:g}", "--tpot-ms", f"{tpot_ms:g}", "--sim", "batch_capacity=1024")
    await wait_ready(port, path="/health")
    return port


@contextmanager
def vllm_replica(ttft_ms: float, tpot_ms: float) -> Iterator[str]:
    """The replica in a process of its own, for a bench that drives an adapter in this one; yields its URL."""
    with tempfile.TemporaryDirectory(prefix="lockgate-replica-") as logdir:
        procs = Procs(Path(logdir))
        try:
            port = asyncio.run(start_replica(procs, ttft_ms, tpot_ms))
            yield f"http://127.0.0.1:{port}"
        finally:
            procs.stop()


async def write_target_config(cfg: Path, procs: Procs, args: argparse.Namespace, prefix: str, kind: str) -> None:
    """A lockgate target's config; with ``--engine vllm-replica`` first a replica of its own (its CPU is printed
    as "sim-server", apart from lockgate's), started in ``procs`` and so stopped with the target: no state
    carries over between targets."""
    engine_url = None
    if args.engine == "vllm-replica":
        engine_url = f"http://127.0.0.1:{await start_replica(procs, args.ttft_ms, args.tpot_ms)}"
    write_config(cfg, args, prefix, args.redis, kind, engine_url)


def add_engine_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--engine", default="sim", choices=["sim", "vllm-replica"],
                        help="the lockgate targets' backend: sim, the simulator in the worker (or serve) process; "
                             "vllm-replica, the `vllm` adapter over HTTP to a `lockgate sim-server --protocol "
                             "vllm` of its own (the HTTP adapters' read path included), as beside a real engine")


async def start_target(target: str, procs: Procs, tmpdir: Path, args: argparse.Namespace, prefix: str) -> int:
    """Start one target's processes; return its port once it is ready and warm."""
    if target == "engine":
        port = await start_replica(procs, args.ttft_ms, args.tpot_ms)
    else:
        port = free_port()
        cfg = tmpdir / f"{target}.toml"
        await write_target_config(cfg, procs, args, prefix, target)
        start_lockgate(procs, target, cfg, port, args.procs, args.workers)
        await wait_ready(port)
    await warm(port, args.tokens)
    return port


def measured(result: Result, keep: set[int]) -> Result:
    return Result(result.name, [s for s in result.samples if s.index in keep], result.cpu_ms_per_request,
                  result.load)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rate", type=float, default=200.0, help="requests per second (Poisson)")
    parser.add_argument("--duration", type=float, default=10.0, help="seconds of measured load")
    parser.add_argument("--tokens", type=int, default=16)
    parser.add_argument("--procs", type=int, default=1,
                        help="processes per lockgate role: N serve, or N gateways + N workers (shared port)")
    parser.add_argument("--workers", type=int,
                        help="workers of the redis target, if not --procs: how the idle workers share a bell")
    parser.add_argument("--ttft-ms", type=float, default=20.0)
    parser.add_argument("--tpot-ms", type=float, default=10.0)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--redis", default=os.environ.get("LOCKGATE_REDIS_URL", "redis://127.0.0.1:6379/0"))
    parser.add_argument("--logdir", help="keep configs and process logs here (default: a temporary directory)")
    parser.add_argument("--dispatch-option", action="append", metavar="KEY=VALUE",
                        help="a [dispatch] setting for the lockgate targets (TOML), repeatable")
    parser.add_argument("--targets", default="engine,embedded,redis",
                        help="comma-separated: engine,embedded,redis,local, and sim (the simulator in this process)")
    parser.add_argument("--rounds", type=int, default=1,
                        help="repeat the HTTP targets, alternating their order (default 1)")
    add_engine_option(parser)
    uvloop.run(main(parser.parse_args()))
