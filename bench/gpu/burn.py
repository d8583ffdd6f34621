"""Run a command while busy loops keep some of lockgate's CPUs (the REST set of bench/gpu/pin.py) busy.

    python3 -m bench.gpu.burn 5 -- CMD ...

The question it answers (run.sh burn): does load on the CPUs vLLM does not use slow vLLM down by itself, with no
lockgate request in flight? On a VM, two vCPUs can be hyperthreads of one host core, and a package shares its turbo
budget: neither shows as run-queue wait or steal. The loops run on the REST set when pinned, on all CPUs otherwise;
CMD runs on the REST set when pinned (like `pin.py exec`). Exit status: CMD's.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time

from bench.gpu import pin  # run from the repo root: python3 -m bench.gpu.burn

SPIN = "import os, sys; os.sched_setaffinity(0, {int(c) for c in sys.argv[1].split(',')})\nwhile True: pass"


def burn(n: int, argv: list[str]) -> int:
    st = pin.state()
    pinned = st.get("mode") == "pinned"
    cpus = pin.parse_cpulist(str(st["rest_cpus"])) if pinned else sorted(os.sched_getaffinity(0))
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
        print(f"burn: {n} loops on CPUs {pin.cpulist(cpus)} used {used / wall:.2f} cores for {wall:.0f} s")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("loops", type=int, help="busy loops to run (5 is about lockgate's share at c=32 on the H200)")
    ap.add_argument("argv", nargs=argparse.REMAINDER, help="-- CMD ...")
    args = ap.parse_args()
    argv = args.argv[1:] if args.argv[:1] == ["--"] else args.argv
    if not argv:
        ap.error("no command after --")
    return burn(args.loops, argv)


if __name__ == "__main__":
    sys.exit(main())
