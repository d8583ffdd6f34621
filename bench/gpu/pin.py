"""CPU pinning for the bake-off: vLLM on its own physical cores, lockgate, Redis and the bench client on the others.

    python3 bench/gpu/pin.py topology          # logical CPUs per physical core, and the two sets it would use
    python3 bench/gpu/pin.py apply pinned      # vLLM's process tree -> VLLM set; lockgate, Redis, sink -> REST set
    python3 bench/gpu/pin.py apply open        # every one of them back to all CPUs (no restart)
    python3 bench/gpu/pin.py apply again       # the last mode again, for processes started since
    python3 bench/gpu/pin.py exec -- CMD ...   # run CMD on the REST set when the last `apply` was `pinned`
    python3 bench/gpu/pin.py stop-workers B..  # SIGTERM lockgate's workers of backends B.., wait until they left

Sets: BAKE_PIN_VLLM_CPUS and BAKE_PIN_REST_CPUS (cpulists, e.g. 8-15 and 0-7) when given; otherwise vLLM gets the
last BAKE_PIN_VLLM_CORES physical cores (default 3/8 of them, at least one) with all their hyperthread siblings,
and the rest gets every other logical CPU, so no core is shared between the two. `apply` sets the affinity of every
thread of every process (what `taskset -a -p -c` does, through the same sched_setaffinity call), repeats until no
new thread turns up, and records the state in $W/pin.json for `exec` and for the engine phase's records.
vLLM's processes are the tree under the pid that setup.sh saved in $W/vllm.pid (API server, engine core, helpers;
once `run.sh sglang-start` has replaced vLLM by SGLang, SGLang's launcher, scheduler and detokenizer);
lockgate's are those started with --config $W/lockgate.toml, Redis the one in $W/redis.pid: nothing else is touched.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import signal
import sys
import time
from pathlib import Path

W = Path(os.environ.get("W", "/tmp/bake"))
SYS_CPU = Path("/sys/devices/system/cpu")
CLK_TCK = os.sysconf("SC_CLK_TCK")
# Followed by the model's path under $W. The "vllm" set and roles hold the engine under test, SGLang's too.
VLLM_MARKERS = ("vllm.entrypoints.cli.main serve", "sglang.launch_server --model-path")


def parse_cpulist(text: str) -> list[int]:
    cpus: list[int] = []
    for part in text.strip().split(","):
        if not part:
            continue
        lo, _, hi = part.partition("-")
        cpus.extend(range(int(lo), int(hi or lo) + 1))
    return sorted(set(cpus))


def cpulist(cpus: list[int] | set[int]) -> str:
    """[0, 1, 2, 5] -> '0-2,5'."""
    xs = sorted(cpus)
    runs: list[str] = []
    i = 0
    while i < len(xs):
        j = i
        while j + 1 < len(xs) and xs[j + 1] == xs[j] + 1:
            j += 1
        runs.append(str(xs[i]) if i == j else f"{xs[i]}-{xs[j]}")
        i = j + 1
    return ",".join(runs)


def all_cpus() -> list[int]:
    online = SYS_CPU / "online"
    return parse_cpulist(online.read_text()) if online.exists() else sorted(os.sched_getaffinity(0))


def cores() -> list[list[int]]:
    """Logical CPUs grouped by physical core (package, core id), cores in order of their first CPU."""
    groups: dict[tuple[int, int], list[int]] = {}
    for cpu in all_cpus():
        topo = SYS_CPU / f"cpu{cpu}" / "topology"
        try:
            key = (int((topo / "physical_package_id").read_text()), int((topo / "core_id").read_text()))
        except (OSError, ValueError):
            key = (0, cpu)
        groups.setdefault(key, []).append(cpu)
    return sorted(groups.values(), key=lambda g: g[0])


def sets() -> tuple[list[int], list[int]]:
    """(vLLM's CPUs, everyone else's)."""
    env_vllm, env_rest = os.environ.get("BAKE_PIN_VLLM_CPUS"), os.environ.get("BAKE_PIN_REST_CPUS")
    if env_vllm:
        vllm = parse_cpulist(env_vllm)
        rest = parse_cpulist(env_rest) if env_rest else [c for c in all_cpus() if c not in vllm]
        return vllm, rest
    groups = cores()
    n = int(os.environ.get("BAKE_PIN_VLLM_CORES", "0")) or max(1, len(groups) * 3 // 8)
    n = min(n, len(groups) - 1) if len(groups) > 1 else 1
    vllm = sorted(c for g in groups[len(groups) - n:] for c in g)
    rest = sorted(c for g in groups[: len(groups) - n] for c in g) or vllm
    return vllm, rest


def cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace").strip()
    except OSError:
        return ""


def stat_fields(stat: str) -> list[str]:
    """The fields of a /proc/.../stat line after the command name (which may hold spaces and parentheses):
    [0] is the state, [1] the parent pid, [11] and [12] user and system CPU ticks."""
    return stat[stat.rindex(")") + 2:].split()


def cpu_seconds(stat: str) -> float:
    """User plus system CPU of a /proc/.../stat line, in seconds."""
    fields = stat_fields(stat)
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def children_map() -> dict[int, list[int]]:
    kids: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        ppid = int(stat_fields(stat)[1])
        kids.setdefault(ppid, []).append(int(entry.name))
    return kids


def tree(root: int, kids: dict[int, list[int]]) -> list[int]:
    out, todo = [], [root]
    while todo:
        pid = todo.pop()
        out.append(pid)
        todo.extend(kids.get(pid, []))
    return out


def vllm_root() -> int | None:
    """The pid setup.sh saved, or else the process that runs vLLM's server (or the rehearsal's replica)."""
    try:
        pid = int((W / "vllm.pid").read_text())
        if Path(f"/proc/{pid}").exists():
            return pid
    except (OSError, ValueError):
        pass
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and any(f"{m} {W}" in cmdline(int(entry.name)) for m in VLLM_MARKERS):
            return int(entry.name)
    return None


def roles() -> dict[int, str]:
    """pid -> role, for every process of the bake-off (vLLM's tree, lockgate's processes, Redis, the OTLP sink)."""
    kids = children_map()
    out: dict[int, str] = {}
    root = vllm_root()
    if root is not None:
        procs = {pid: cmdline(pid) for pid in tree(root, kids)}
        # With --api-server-count N, vLLM's root only launches: N children titled VLLM::APIServer_i serve HTTP.
        api = {pid for pid, cmd in procs.items() if "APIServer" in cmd} or {root}
        for pid, cmd in procs.items():
            out[pid] = "vllm-api" if pid in api else ("vllm-engine" if "EngineCore" in cmd else "vllm-other")
    try:  # setup.sh's Redis only (its pidfile), never a Redis that the machine already ran
        redis = int((W / "redis.pid").read_text())
        if Path(f"/proc/{redis}").exists():
            out[redis] = "redis"
    except (OSError, ValueError):
        pass
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) in out:
            continue
        cmd = cmdline(int(entry.name))
        # lockgate.toml, or a variant of it (env.sh's start_workers with BAKE_WAKE: lockgate-wake-fifo.toml)
        if f"--config {W}/lockgate" in cmd and "gateway.cli gateway" in cmd:
            out[int(entry.name)] = "gateway"
        elif f"--config {W}/lockgate-local" in cmd and "gateway.cli serve" in cmd:
            out[int(entry.name)] = "local"  # setup.sh's BAKE_COLOCATED: gateway and worker in one process, Redis
        elif f"--config {W}/lockgate" in cmd and "gateway.cli serve" in cmd:
            out[int(entry.name)] = "embedded"  # setup.sh's BAKE_EMBEDDED: gateway and worker in one process
        elif f"--config {W}/lockgate" in cmd and "gateway.cli worker" in cmd:
            out[int(entry.name)] = "worker-hf" if "hf-a" in cmd else ("worker-sglang" if "sglang-a" in cmd
                                                                     else "worker-vllm")
        elif f"otlp_sink.py --port 4318 --out {W}/" in cmd:
            out[int(entry.name)] = "otlp-sink"
        elif "gateway.cli sim-server --protocol vllm --port 8200 " in cmd + " ":
            out[int(entry.name)] = "shadow-engine"  # run.sh shadow's replica: on the rest set, beside lockgate
    return out


def set_threads(pid: int, cpus: set[int]) -> int:
    """Affinity of every thread of pid; returns how many threads changed."""
    changed = 0
    try:
        tids = [int(t) for t in os.listdir(f"/proc/{pid}/task")]
    except OSError:
        return 0
    for tid in tids:
        try:
            if os.sched_getaffinity(tid) != cpus:
                os.sched_setaffinity(tid, cpus)
                changed += 1
        except OSError:  # the thread ended meanwhile
            continue
    return changed


def apply(mode: str) -> dict[str, object]:
    vllm, rest = sets()
    everything = set(all_cpus())
    target = {"vllm": set(vllm), "rest": set(rest)} if mode == "pinned" else {"vllm": everything, "rest": everything}
    found = roles()
    if not any(r.startswith("vllm") for r in found.values()):
        print(f"pin: no vLLM process under {W / 'vllm.pid'}", file=sys.stderr)
    for _ in range(5):  # threads started while we went round get the next pass
        changed = sum(set_threads(pid, target["vllm" if role.startswith("vllm") else "rest"])
                      for pid, role in roles().items())
        if not changed:
            break
    state: dict[str, object] = {"mode": mode, "vllm_cpus": cpulist(target["vllm"]),
                                "rest_cpus": cpulist(target["rest"]), "cores": [cpulist(g) for g in cores()]}
    counts: dict[str, int] = {}
    for role in found.values():
        counts[role] = counts.get(role, 0) + 1
    state["processes"] = counts
    W.mkdir(parents=True, exist_ok=True)
    (W / "pin.json").write_text(json.dumps(state) + "\n")
    return state


def alive(pid: int) -> bool:
    """Running, not a zombie that its parent has yet to reap."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat_fields(stat)[0] != "Z"


def stop_workers(backends: list[str], timeout_s: float = 60.0) -> int:
    """SIGTERM every lockgate worker of these backends; a worker finishes or hands back its jobs, then exits."""
    pids = [pid for pid, role in roles().items() if role.startswith("worker")
            and any(f"--backend {b} " in cmdline(pid) + " " for b in backends)]
    return stop(pids, f"workers of {' '.join(backends)}", timeout_s)


def stop_gateways(timeout_s: float = 60.0) -> int:
    """SIGTERM every lockgate gateway (run.sh gateways N starts another count)."""
    return stop([pid for pid, role in roles().items() if role == "gateway"], "gateways", timeout_s)


def stop(pids: list[int], what: str, timeout_s: float) -> int:
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout_s
    while any(alive(p) for p in pids) and time.monotonic() < deadline:
        time.sleep(0.2)
    left = [p for p in pids if alive(p)]
    print(f"stopped {len(pids) - len(left)} {what}" + (f"; still running: {left}" if left else ""))
    return 1 if left else 0


def state() -> dict[str, object]:
    try:
        loaded: dict[str, object] = json.loads((W / "pin.json").read_text())
        return loaded
    except (OSError, ValueError):
        return {"mode": "open"}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="cmd", required=True)
    sub.add_parser("topology")
    ap = sub.add_parser("apply")
    ap.add_argument("mode", choices=["pinned", "open", "again"])
    sw = sub.add_parser("stop-workers")
    sw.add_argument("backends", nargs="+")
    sub.add_parser("stop-gateways")
    ex = sub.add_parser("exec")
    ex.add_argument("argv", nargs=argparse.REMAINDER)
    args = parser.parse_args()
    if args.cmd == "topology":
        vllm, rest = sets()
        print(f"cores (logical CPUs of each): {' '.join('[' + cpulist(g) + ']' for g in cores())}")
        print(f"vllm: {cpulist(vllm)}  rest: {cpulist(rest)}")
    elif args.cmd == "stop-workers":
        return stop_workers(args.backends)
    elif args.cmd == "stop-gateways":
        return stop_gateways()
    elif args.cmd == "apply":
        mode = str(state().get("mode", "open")) if args.mode == "again" else args.mode
        print(f"pin: {json.dumps(apply(mode))}")
    else:
        argv = args.argv[1:] if args.argv[:1] == ["--"] else args.argv
        st = state()
        if st.get("mode") == "pinned":
            os.sched_setaffinity(0, set(parse_cpulist(str(st["rest_cpus"]))))
        os.execvp(argv[0], argv)
    return 0


if __name__ == "__main__":
    sys.exit(main())
