"""Run a command while busy loops keep some of lockgate's CPUs (the REST set of bench/gpu/pin.py) busy.

    python3 -m bench.gpu.burn 5 -- CMD ...
    python3 -m bench.gpu.burn --poll -- CMD ...

The question it answers (run.sh burn): does load on the CPUs vLLM does not use slow vLLM down by itself, with no
lockgate request in flight? On a VM, two vCPUs can be hyperthreads of one host core, and a package shares its turbo
budget: neither shows as run-queue wait or steal. The loops run on the REST set when pinned, on all CPUs otherwise;
CMD runs on the REST set when pinned (like `pin.py exec`). Exit status: CMD's.

`--poll` asks another question: how much of lockgate's first token at c=1 is the host waking halted vCPUs? This
guest has no cpuidle driver, so an idle vCPU halts and a wake-up is a VM exit and re-entry (a round trip between two
processes: ~150 µs after 50 ms idle, ~12 µs back to back). One loop per CPU of the set, each on its own CPU in the
SCHED_IDLE class, keeps every vCPU running without taking CPU from anything else: a woken process preempts the loop
at once, as with the kernel's `idle=poll` or a `haltpoll` cpuidle driver (the loops' hyperthread siblings share
their cores, as they would there).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time

from bench.gpu import pin  # run from the repo root: python3 -m bench.gpu.burn

SPIN = "import os, sys; os.sched_setaffinity(0, {int(c) for c in sys.argv[1].split(',')})\nwhile True: pass"
POLL = ("import os, sys; os.sched_setaffinity(0, {int(sys.argv[1])}); "
        "os.sched_setscheduler(0, os.SCHED_IDLE, os.sched_param(0))\nwhile True: pass")


def burn(n: int, argv: list[str], poll: bool = False) -> int:
    st = pin.state()
    pinned = st.get("mode") == "pinned"
    cpus = pin.parse_cpulist(str(st["rest_cpus"])) if pinned else sorted(os.sched_getaffinity(0))
    if poll:
        loops = [subprocess.Popen([sys.executable, "-c", POLL, str(c)]) for c in cpus]
        n = len(loops)
    else:
        loops = [subprocess.Popen([sys.executable, "-c", SPIN, ",".join(map(str, cpus))]) for _ in range(n)]
    started = time.monotonic()
    try:
        if pinned:
            os.sched_setaffinity(0, set(cpus))
        return subprocess.call(argv)
    finally:
        used = 0.0
        for p in loops:
            with open(f"/proc/{p.pid}/stat") as f:
                used += pin.cpu_seconds(f.read())
            p.kill()
            p.wait()
        wall = time.monotonic() - started
        kind = " SCHED_IDLE (one per CPU)" if poll else ""
        print(f"burn: {n} loops{kind} on CPUs {pin.cpulist(cpus)} used {used / wall:.2f} cores for {wall:.0f} s")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter,
                                 usage="%(prog)s (LOOPS | --poll) -- CMD ...")
    ap.add_argument("loops", type=int, nargs="?", default=0,
                    help="busy loops to run (5 is about lockgate's share at c=32 on the H200)")
    ap.add_argument("--poll", action="store_true",
                    help="instead: one SCHED_IDLE loop on each CPU of the set, so no vCPU halts")
    # Split at "--" first: an optional LOOPS would otherwise take CMD's first word.
    argv = sys.argv[1:]
    cut = argv.index("--") if "--" in argv else len(argv)
    args = ap.parse_args(argv[:cut])
    cmd = argv[cut + 1:]
    if not cmd:
        ap.error("no command after --")
    if not args.poll and args.loops <= 0:
        ap.error("give a number of loops, or --poll")
    return burn(args.loops, cmd, poll=args.poll)


if __name__ == "__main__":
    sys.exit(main())
