"""Readiness for the bake-off: wait for a URL to answer 200, or for models to complete a request through lockgate.

    python3 bench/gpu/smoke.py --wait http://127.0.0.1:8100/health --timeout 600
    python3 bench/gpu/smoke.py --models qwen-vllm qwen-hf --timeout 600
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import urllib.error
import urllib.request


def ok(url: str, body: dict[str, object] | None = None) -> str | None:
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(url, data=data, headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=30) as resp:
            return resp.read().decode() if resp.status == 200 else None
    except (urllib.error.URLError, OSError):
        return None


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--wait")
    parser.add_argument("--models", nargs="*", default=[])
    parser.add_argument("--gateway", default="http://127.0.0.1:8000")
    parser.add_argument("--timeout", type=float, default=600)
    args = parser.parse_args()
    deadline = time.monotonic() + args.timeout
    pending = ([args.wait] if args.wait else []) + list(args.models)
    while pending and time.monotonic() < deadline:
        item = pending[0]
        if item.startswith("http"):
            answer = ok(item)
        else:
            answer = ok(f"{args.gateway}/v1/completions",
                        {"model": item, "prompt": "req0x1 time year people", "max_tokens": 8})
        if answer is None:
            time.sleep(1)
            continue
        print(f"ready: {item} {answer[:160]}", flush=True)
        pending.pop(0)
    if pending:
        print(f"not ready after {args.timeout:.0f} s: {pending}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
