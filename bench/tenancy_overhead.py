"""What a key's limits cost a streamed request: the tenancy path alone (admission, one charge per chunk from
the lease, the extensions, the settlement), for an unlimited key and a key with RPM, TPM and concurrency
limits; in process and against Redis. Compared with what one Redis round trip per token would cost.

Rounds interleave the variants; medians are reported.
Run: .venv/bin/python bench/tenancy_overhead.py [--redis redis://127.0.0.1:6379/0] [--requests 500] [--tokens 512]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import time
import uuid
from pathlib import Path

from redis.asyncio import Redis

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from backends.request import ChatMessage, GenerationRequest
from gateway.config import parse_config
from gateway.tenants.records import KeyRecord
from gateway.tenants.service import Tenancy
from observability.recorder import RequestRecorder
from observability.telemetry import Telemetry
from routing.experiments import Timing
from tests.support.configs import sim_config_text

UNLIMITED = KeyRecord(id="plain", name="plain", sha256="0" * 64)
LIMITED = KeyRecord(id="metered", name="metered", sha256="1" * 64, rpm=10**9, tpm=10**9, max_concurrent=10**6)


async def one_pass(tenancy: Tenancy, telemetry: Telemetry, key: KeyRecord, requests: int, tokens: int) -> float:
    """Microseconds of tenancy work per request of ``tokens`` one-token chunks."""
    request = GenerationRequest(request_id="r", model="sim-small", operation="chat", max_tokens=tokens,
                                messages=(ChatMessage("user", "hello " * 60),))
    t0 = time.perf_counter()
    for _ in range(requests):
        recorder = RequestRecorder(telemetry, request, None)
        allowance = await tenancy.admit(key, request, recorder)
        assert allowance is not None
        for _ in range(tokens):
            if not allowance.take(1):
                await allowance.extend(1)
        _ = allowance.headers
        settling = allowance.settle(Timing(backend="sim", ok=True, prompt_tokens=60, completion_tokens=tokens))
        assert settling is not None
        await settling
        recorder.cancelled()
    return (time.perf_counter() - t0) / requests * 1e6


async def run(args: argparse.Namespace) -> None:
    redis = Redis.from_url(args.redis)
    prefix = f"lgbench{uuid.uuid4().hex[:6]}"  # a prefix of its own, deleted at the end
    config = parse_config(sim_config_text(auth_keys=[]).replace("[auth]", f'[dispatch]\nkey_prefix = "{prefix}"\n'
                                                                          "[auth]"))
    telemetry = Telemetry.build(config.telemetry)
    variants = {"in process": Tenancy(config, telemetry.meter, {}, None),
                "Redis": Tenancy(config, telemetry.meter, {}, Redis.from_url(args.redis))}
    results: dict[str, list[float]] = {}
    try:
        for _ in range(args.rounds):
            for where, tenancy in variants.items():
                for key in (UNLIMITED, LIMITED):
                    results.setdefault(f"{where}, {key.id}", []).append(
                        await one_pass(tenancy, telemetry, key, args.requests, args.tokens))
            t0 = time.perf_counter()
            for _ in range(args.requests):
                await redis.ping()
            results.setdefault("one Redis PING", []).append((time.perf_counter() - t0) / args.requests * 1e6)
    finally:
        for tenancy in variants.values():
            await tenancy.close()
        found = [k async for k in redis.scan_iter(match=f"{prefix}:*")]
        if found:
            await redis.delete(*found)
        await redis.aclose()
    print(f"{args.requests} requests x {args.tokens} one-token chunks, {args.rounds} rounds, medians:")
    for name, values in results.items():
        median = statistics.median(values)
        per_token = "" if name == "one Redis PING" else f"  ({median / args.tokens:.2f} us per token)"
        print(f"  {name:<26} {median:9.1f} us per request{per_token}")
    ping = statistics.median(results["one Redis PING"])
    print(f"  a Redis round trip per token would be {ping * args.tokens:.0f} us per request")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--redis", default="redis://127.0.0.1:6379/0")
    ap.add_argument("--requests", type=int, default=500)
    ap.add_argument("--tokens", type=int, default=512)
    ap.add_argument("--rounds", type=int, default=3)
    asyncio.run(run(ap.parse_args()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
