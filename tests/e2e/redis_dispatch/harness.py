"""Real processes for the Redis dispatch tests: ``lockgate gateway`` / ``lockgate worker`` against a real Redis.

Every test gets its own key prefix (and the shared Redis's DB 9), so tests never see each other's keys.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import redis
import redis.cluster

from tests.support.procs import free_port

ROOT = Path(__file__).resolve().parents[3]
SHARED_REDIS = os.environ.get("LOCKGATE_TEST_REDIS_URL", "redis://127.0.0.1:6379/9")


def wait_until(predicate: Callable[[], Any], timeout: float, what: str, interval: float = 0.02) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise TimeoutError(f"timed out after {timeout}s waiting for {what}")


def _toml_value(v: Any) -> str:
    if isinstance(v, dict):
        return _table(v)
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int | float):
        return repr(v)
    return json.dumps(v)


def _table(values: dict[str, Any]) -> str:
    return "{ " + ", ".join(f"{k} = {_toml_value(v)}" for k, v in values.items()) + " }"


class Proc:
    def __init__(self, args: list[str], log: Path) -> None:
        self.log = log
        self._fh = log.open("w")
        self.proc = subprocess.Popen([sys.executable, "-m", "gateway.cli", *args], stdout=self._fh,
                                     stderr=subprocess.STDOUT, cwd=ROOT,
                                     env={k: v for k, v in os.environ.items() if k != "LOCKGATE_REDIS_URL"})

    @property
    def alive(self) -> bool:
        return self.proc.poll() is None

    def output(self) -> str:
        self._fh.flush()
        return self.log.read_text()

    def kill(self) -> None:
        """SIGKILL: a crash, no cleanup."""
        if self.alive:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(10)

    def terminate(self, timeout: float = 20) -> int:
        if self.alive:
            self.proc.terminate()
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        return self.proc.returncode


class Deployment:
    """Config files, processes and Redis access for one test."""

    def __init__(self, tmp: Path, redis_url: str = SHARED_REDIS,
                 client: redis.Redis | redis.cluster.RedisCluster | None = None,
                 dispatch: dict[str, Any] | None = None) -> None:
        """``client``: how the test itself reads Redis, for a Cluster or Sentinel ``redis_url``.
        ``dispatch``: ``[dispatch]`` settings of every config this deployment writes."""
        self.tmp = tmp
        self.dispatch = dispatch or {}
        self.redis_url = redis_url
        self.prefix = f"lgt{uuid.uuid4().hex[:10]}"
        self.procs: list[Proc] = []
        self.r = client if client is not None else redis.Redis.from_url(redis_url)

    # -- config --------------------------------------------------------------------------------------------
    def config(self, name: str = "lockgate", *, sim: dict[str, Any] | None = None,
               dispatch: dict[str, Any] | None = None, limits: dict[str, Any] | None = None,
               concurrency: int | None = None, grace_s: float = 5.0, admin_key: str | None = None,
               tenants: dict[str, Any] | None = None, routing: dict[str, Any] | None = None) -> Path:
        """``admin_key``: turn auth on with this admin key (inference keys then come from the admin API)."""
        sim_opts = {"ttft_ms": 10, "tpot_ms": 5, **(sim or {})}
        disp = {"kind": "redis", "redis_url": self.redis_url, "key_prefix": self.prefix,
                "visibility_timeout_s": 1.5, "heartbeat_interval_s": 0.2, "block_ms": 500, **self.dispatch,
                **(dispatch or {})}
        lim = {"max_attempts": 2, **(limits or {})}
        lines = [
            "[server]", f"shutdown_grace_s = {grace_s}",
            "[auth]", f"enabled = {_toml_value(admin_key is not None)}",
            *(["[[auth.admin_keys]]", 'name = "ops"', f'sha256 = "{hashlib.sha256(admin_key.encode()).hexdigest()}"']
              if admin_key else []),
            "[tenants]", *(f"{k} = {_toml_value(v)}" for k, v in (tenants or {}).items()),
            "[routing]", *(f"{k} = {_toml_value(v)}" for k, v in {"health_interval_s": 0.5, **(routing or {})}.items()),
            "[limits]", *(f"{k} = {_toml_value(v)}" for k, v in lim.items()),
            "[dispatch]", *(f"{k} = {_toml_value(v)}" for k, v in disp.items()),
            "[models.m]", 'backends = [{ backend = "sim" }]',
            "[backends.sim]", 'kind = "sim"', f"options = {_table(sim_opts)}",
        ]
        if concurrency:
            lines.append(f"concurrency = {concurrency}")
        path = self.tmp / f"{name}.toml"
        path.write_text("\n".join(lines) + "\n")
        return path

    # -- processes -----------------------------------------------------------------------------------------
    def worker(self, config: Path, *, wait: bool = True) -> Proc:
        before = self.worker_ids()
        proc = Proc(["worker", "--config", str(config)], self.tmp / f"worker-{len(self.procs)}.log")
        self.procs.append(proc)
        if wait:
            wait_until(lambda: self.worker_ids() - before or not proc.alive, 20, "a worker to report")
            assert proc.alive, proc.output()
        return proc

    def gateway(self, config: Path) -> Gateway:
        port = free_port()
        proc = Proc(["gateway", "--config", str(config), "--port", str(port)], self.tmp / f"gw-{port}.log")
        self.procs.append(proc)
        gw = Gateway(proc, port)

        def ready() -> bool:
            if not proc.alive:
                raise RuntimeError(proc.output())
            try:
                return httpx.get(f"{gw.url}/readyz", timeout=1).status_code == 200
            except httpx.HTTPError:
                return False

        wait_until(ready, 20, "the gateway to be ready", interval=0.05)
        return gw

    def close(self) -> None:
        for p in self.procs:
            p.kill()

    # -- Redis views ---------------------------------------------------------------------------------------
    def redis_keys(self) -> list[str]:
        """The test's keys; on a Cluster, scanned on every master."""
        match = f"{self.prefix}:*"
        if isinstance(self.r, redis.cluster.RedisCluster):
            return sorted({k.decode() for node in self.r.get_primaries()
                           for k in self.r.scan_iter(match=match, count=1000, target_nodes=node)})
        return sorted(k.decode() for k in self.r.scan_iter(match=match, count=1000))

    def jobs_key(self, band: int = 0) -> str:
        return f"{self.prefix}:{{sim}}:jobs:{band}"

    def waiting(self, band: int = 0) -> int:
        """Jobs waiting for a worker: in the band's fair set, or (a take failed half-way) undelivered in its
        stream."""
        return int(self.r.zcard(f"{self.prefix}:{{sim}}:fair:{band}")) + int(self.r.xlen(self.jobs_key(band))) \
            - len(self.pending(band))

    def live_workers(self) -> int:
        try:
            return int(self.r.hlen(f"{self.prefix}:{{sim}}:workers"))
        except redis.RedisError:
            return 0

    def worker_ids(self) -> set[bytes]:
        try:
            return set(self.r.hkeys(f"{self.prefix}:{{sim}}:workers"))
        except redis.RedisError:
            return set()

    def pending(self, band: int = 0) -> list[dict[str, Any]]:
        try:
            return list(self.r.xpending_range(self.jobs_key(band), "workers", "-", "+", 100))
        except redis.ResponseError:
            return []

    def keys_without_ttl(self) -> list[str]:
        return [k for k in self.redis_keys() if self.r.ttl(k) < 0 and self.r.exists(k)]

    def cleanup(self) -> None:
        for key in self.redis_keys():  # one by one: on a Cluster they live in different slots
            self.r.delete(key)
        self.r.close()


class Gateway:
    def __init__(self, proc: Proc, port: int) -> None:
        self.proc = proc
        self.port = port
        self.url = f"http://127.0.0.1:{port}"


def body(prompt: str, max_tokens: int = 16, stream: bool = True, **extra: Any) -> dict[str, Any]:
    out: dict[str, Any] = {"model": "m", "messages": [{"role": "user", "content": prompt}],
                           "max_tokens": max_tokens, "stream": stream, "ignore_eos": True, "seed": 7, **extra}
    if stream:
        out["stream_options"] = {"include_usage": True}
    return out


def stream_in_background(url: str, payload: dict[str, Any],
                         timeout: float = 60) -> tuple[threading.Thread, dict[str, Any]]:
    """Start a streamed request in a thread; once it is joined, the dict holds its ``status`` and ``events``."""
    result: dict[str, Any] = {}

    def client() -> None:
        with httpx.stream("POST", f"{url}/v1/chat/completions", json=payload, timeout=timeout) as resp:
            result["status"] = resp.status_code
            result["events"] = list(sse_events(resp.iter_lines()))

    thread = threading.Thread(target=client)
    thread.start()
    return thread, result


def sse_events(lines: Iterator[str]) -> Iterator[dict[str, Any] | str]:
    """Parsed ``data:`` payloads of an SSE stream; ``"[DONE]"`` as a string."""
    for line in lines:
        if not line.startswith("data: "):
            continue
        data = line[6:]
        yield data if data == "[DONE]" else json.loads(data)


def content_of(event: dict[str, Any] | str) -> str | None:
    if isinstance(event, str) or "error" in event or not event.get("choices"):
        return None
    content = event["choices"][0].get("delta", {}).get("content")
    return content or None


class RedisServer:
    """A throwaway ``redis-server`` on a free port (for the restart test; never the shared one)."""

    def __init__(self, tmp: Path) -> None:
        self.port = free_port()
        self.dir = tmp / f"redis-{self.port}"
        self.dir.mkdir()
        self.proc: subprocess.Popen[bytes] | None = None
        self.url = f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        binary = shutil.which("redis-server") or "redis-server"
        self.proc = subprocess.Popen([binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
                                      "--appendonly", "no", "--dir", str(self.dir)],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        client = redis.Redis.from_url(self.url)

        def up() -> bool:
            try:
                return bool(client.ping())
            except redis.RedisError:
                return False

        wait_until(up, 10, "redis-server to start")
        client.close()

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)


def expected_text(prompt: str, max_tokens: int, seed: int = 7) -> str:
    """What the ``sim`` backend answers to one user message with ``ignore_eos``: its words, computed here
    from its own generator, so the text a client gets through the dispatch can be compared word for word."""
    from backends.sim.options import SimOptions
    from backends.sim.text import natural_length, next_token, rng_for

    options = SimOptions()
    rng = rng_for(f"<|user|>\n{prompt}\n<|assistant|>\n", seed, 0)
    natural_length(rng, options.eos_min_tokens, options.eos_max_tokens)  # drawn first by the simulator too
    return "".join(next_token(rng, i) for i in range(max_tokens))


@contextlib.contextmanager
def ttl_checked(dep: Deployment) -> Iterator[Deployment]:
    """A test's deployment, stopped when the test ends; then (invariant 9) every key it left must have a TTL."""
    try:
        yield dep
    finally:
        dep.close()
        try:
            assert dep.keys_without_ttl() == [], "lockgate keys without a TTL"
        finally:
            dep.cleanup()
