"""Snapshots taken right before and after each (target, point, round) run of the engine phase.

A snapshot holds: vLLM's Prometheus /metrics (every `vllm:` counter, histogram `_sum`/`_count` and gauge, summed
over label sets; buckets left out but those of the tokens per engine step, `STEP_BUCKET|le=N`), every bake-off
process's CPU time, time spent runnable but waiting for a CPU
(`run_delay` from /proc/PID/task/TID/schedstat) and involuntary context switches, summed per role (pin.roles) and
kept per thread for the busiest, /proc/stat's per-CPU counters (busy, steal), and the host's count of TCP
connections opened (/proc/net/snmp `ActiveOpens`: the bench client's to its target, and a lockgate target's to
vLLM and Redis; whether a dispatch opens engine connections during a run). `phase_row` turns a before/after
pair and the run's request records into one row of engine.json; bench/gpu/engine_table.py makes tables of them.
A target without these series (the CPU rehearsal's vLLM replica) gives empty engine figures, not an error.
"""

from __future__ import annotations

import contextlib
import os
import resource
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from bench.gpu import pin  # run from the repo root: python3 -m bench.gpu.engine_bench

STEP_BUCKET = "vllm:iteration_tokens_total_bucket"
"""Step observations by their tokens (cumulative, `le` labels). vLLM records them in each API-server process,
one per engine step with outputs of that server's requests, counting those requests' tokens only: with several
API servers they show how the requests spread over the servers (engine_table.py's docstring), not the steps."""


def parse_metrics(text: str) -> dict[str, float]:
    """`vllm:` series -> value, label sets summed (one engine, one model here); `_created` and the buckets skipped,
    but STEP_BUCKET's, kept per bound as `STEP_BUCKET|le=N`."""
    out: dict[str, float] = {}
    for line in text.splitlines():
        if not line.startswith("vllm:"):
            continue
        if "}" in line:
            series, rest = line[: line.rindex("}") + 1], line[line.rindex("}") + 1:]
        else:
            series, _, rest = line.partition(" ")
        name = series.split("{", 1)[0].strip()
        if name == STEP_BUCKET:
            le = series.partition('le="')[2].partition('"')[0]
            name = f"{STEP_BUCKET}|le={le}"
        elif name.endswith(("_bucket", "_created")):
            continue
        try:
            value = float(rest.split()[0])
        except (IndexError, ValueError):
            continue
        out[name] = out.get(name, 0.0) + value
    return out


def scrape(url: str, timeout_s: float = 10.0) -> dict[str, float]:
    try:
        with urllib.request.urlopen(url, timeout=timeout_s) as resp:
            return parse_metrics(resp.read().decode(errors="replace"))
    except (urllib.error.URLError, OSError, ValueError):
        return {}


def _thread(pid: int, tid: int) -> tuple[str, float, float, int] | None:
    """(name, cpu seconds, run-queue wait seconds, involuntary switches) of one thread."""
    base = f"/proc/{pid}/task/{tid}"
    try:
        stat = Path(f"{base}/stat").read_text()
        comm = stat[stat.index("(") + 1: stat.rindex(")")]
        cpu = pin.cpu_seconds(stat)
        delay = 0.0
        try:
            run_ns, wait_ns, _ = Path(f"{base}/schedstat").read_text().split()
            if int(run_ns) > 0:  # kernels without schedstats show zeros: keep the tick count then
                cpu, delay = int(run_ns) / 1e9, int(wait_ns) / 1e9
        except (OSError, ValueError):
            pass
        nvcsw = 0
        for line in Path(f"{base}/status").read_text().splitlines():
            if line.startswith("nonvoluntary_ctxt_switches:"):
                nvcsw = int(line.split()[1])
        return comm, cpu, delay, nvcsw
    except (OSError, ValueError, IndexError):
        return None


def processes() -> dict[str, dict[str, Any]]:
    """'role pid/tid' -> thread figures, for every thread of every bake-off process."""
    out: dict[str, dict[str, Any]] = {}
    for pid, role in pin.roles().items():
        try:
            tids = [int(t) for t in os.listdir(f"/proc/{pid}/task")]
        except OSError:
            continue
        for tid in tids:
            got = _thread(pid, tid)
            if got is not None:
                comm, cpu, delay, nvcsw = got
                out[f"{role} {pid}/{tid}"] = {"comm": comm, "cpu": cpu, "delay": delay, "nvcsw": nvcsw}
    return out


def cpu_counters() -> list[list[int]]:
    """Per CPU: [busy, idle, steal] in ticks from /proc/stat."""
    rows = []
    for line in Path("/proc/stat").read_text().splitlines():
        if line.startswith("cpu") and line[3:4].isdigit():
            v = [int(x) for x in line.split()[1:]]
            user, nice, system, idle, iowait, irq, softirq = v[:7]
            steal = v[7] if len(v) > 7 else 0
            rows.append([int(line.split()[0][3:]), user + nice + system + irq + softirq, idle + iowait, steal])
    return [r[1:] for r in sorted(rows)]


def tcp_opens(snmp: str | None = None) -> int:
    """TCP connections this host (its network namespace) has opened so far: /proc/net/snmp's Tcp ActiveOpens."""
    if snmp is None:
        try:
            snmp = Path("/proc/net/snmp").read_text()
        except OSError:
            return 0
    rows = [line.split()[1:] for line in snmp.splitlines() if line.startswith("Tcp:")]
    if len(rows) < 2 or "ActiveOpens" not in rows[0]:
        return 0
    return int(rows[1][rows[0].index("ActiveOpens")])


def client_cpu() -> float:
    """CPU seconds of this process and its reaped children (the bench client's processes)."""
    own, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + kids.ru_utime + kids.ru_stime


def snapshot(url: str) -> dict[str, Any]:
    return {"t": time.time(), "engine": scrape(url), "procs": processes(), "cpus": cpu_counters(),
            "client_cpu": client_cpu(), "tcp_opens": tcp_opens()}


def _roles(before: dict[str, dict[str, Any]], after: dict[str, dict[str, Any]], wall: float) -> dict[str, Any]:
    """Per role: CPU (cores), run-queue wait (thread-seconds per second), involuntary switches/s, processes,
    and the busiest threads (name, cores, wait)."""
    roles: dict[str, dict[str, Any]] = {}
    for key, a in after.items():
        b = before.get(key, {"cpu": 0.0, "delay": 0.0, "nvcsw": 0})
        role, ids = key.split(" ", 1)
        r = roles.setdefault(role, {"cpu": 0.0, "delay": 0.0, "nvcsw": 0.0, "pids": set(), "threads": []})
        cpu, delay = (a["cpu"] - b["cpu"]) / wall, (a["delay"] - b["delay"]) / wall
        r["cpu"] += cpu
        r["delay"] += delay
        r["nvcsw"] += (a["nvcsw"] - b["nvcsw"]) / wall
        r["pids"].add(ids.split("/")[0])
        if cpu > 0.02 or delay > 0.02:
            r["threads"].append({"thread": f"{a['comm']} {ids}", "cpu": round(cpu, 3), "delay": round(delay, 3)})
    for r in roles.values():
        r["processes"] = len(r.pop("pids"))
        r["threads"] = sorted(r["threads"], key=lambda t: -t["cpu"])[:4]
        for k in ("cpu", "delay", "nvcsw"):
            r[k] = round(r[k], 3)
    return roles


def _cpus(before: list[list[int]], after: list[list[int]]) -> dict[str, list[float]]:
    busy, steal = [], []
    for b, a in zip(before, after, strict=False):
        total = sum(a) - sum(b)
        busy.append(round((a[0] - b[0]) / total, 3) if total else 0.0)
        steal.append(round((a[2] - b[2]) / total, 3) if total else 0.0)
    return {"busy": busy, "steal": steal}


def _mean(xs: list[float]) -> float | None:
    return sum(xs) / len(xs) if xs else None


def client_figures(records: list[Any]) -> dict[str, Any]:
    """Every request of the run (warm-up too, as vLLM's counters count them): means in seconds."""
    from loadtest.metrics import derive

    ok = [r for r in records if r.outcome == "ok"]
    derived = [derive(r) for r in ok]
    itl = [x for m in derived for x in m.itl]
    # Exact names: x-lockgate-engine-ttft-ms also ends in "ttft-ms".
    headers: dict[str, list[float]] = {"queue": [], "ttft": [], "engine-ttft": [], "relay": []}
    for r in ok:
        for k, v in r.gateway_headers.items():
            xs = headers.get(k.lower().removeprefix("x-lockgate-").removesuffix("-ms"))
            if xs is not None:
                with contextlib.suppress(ValueError):
                    xs.append(float(v) / 1000)
    span = (max(r.t_end for r in ok) - min(r.t_send for r in ok)) if ok else 0.0
    return {
        "requests": len(records), "ok": len(ok), "n_out": sum(r.n_out or 0 for r in ok),
        "n_in": sum(r.n_in or 0 for r in ok), "span_s": span,
        "ttft": _mean([m.ttft for m in derived if m.ttft is not None]),
        "tpot": _mean([m.tpot for m in derived if m.tpot is not None]),
        "itl": _mean(itl), "e2e": _mean([m.e2e for m in derived if m.e2e is not None]),
        "gateway_queue": _mean(headers["queue"]), "gateway_ttft": _mean(headers["ttft"]),
        # The first token's time after the queue, split at the worker (x-lockgate-engine-ttft-ms, -relay-ms).
        "worker_engine_ttft": _mean(headers["engine-ttft"]), "gateway_relay": _mean(headers["relay"]),
    }


def _counted(series: str) -> bool:
    """A series that only grows (counters, histogram sums, counts and the kept buckets): a run's figure is its
    difference; the others are gauges, read after the run."""
    return series.endswith(("_sum", "_count", "_total")) or series.startswith(STEP_BUCKET)


def phase_row(before: dict[str, Any], after: dict[str, Any], records: list[Any]) -> dict[str, Any]:
    wall = max(after["t"] - before["t"], 1e-9)
    eb, ea = before["engine"], after["engine"]
    engine = {k: v - eb.get(k, 0.0) for k, v in ea.items() if _counted(k) and v != eb.get(k, 0.0)}
    gauges = {k: v for k, v in ea.items() if not _counted(k)}
    return {"t_before": before["t"], "wall_s": wall, "engine": engine, "engine_gauges_after": gauges,
            "roles": _roles(before["procs"], after["procs"], wall), "cpus": _cpus(before["cpus"], after["cpus"]),
            "client_cpu": (after["client_cpu"] - before["client_cpu"]) / wall,
            "tcp_opens": after["tcp_opens"] - before["tcp_opens"],
            "client": client_figures(records)}
