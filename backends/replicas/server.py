"""``lockgate sim-server``: serve a protocol replica under uvicorn."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

import msgspec
import uvicorn

from backends.replicas.app import ReplicaApp, build_replica
from backends.replicas.request_log import RequestLog
from backends.sim.engine import SimBackend
from backends.sim.options import SimOptions

PROTOCOLS = ("vllm", "sglang", "trtllm")
DEFAULT_PORTS = {"vllm": 8000, "sglang": 30000, "trtllm": 8000}


def replica_app(protocol: str, model: str, sim_options: dict[str, Any] | None = None) -> ReplicaApp:
    options = msgspec.convert(sim_options or {}, SimOptions, strict=False)
    return build_replica(protocol, SimBackend(f"{protocol}-replica", options), model)


def _sim_pairs(pairs: list[str]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep:
            raise SystemExit(f"--sim expects KEY=VALUE, got {pair!r}")
        out[key.strip().replace("-", "_")] = value.strip()
    return out


def add_parser(sub: Any) -> None:
    """Register ``sim-server`` on the CLI's subparsers."""
    parser = sub.add_parser(
        "sim-server", formatter_class=argparse.RawDescriptionHelpFormatter,
        help="serve the simulated engine over HTTP as a protocol replica of vLLM, SGLang or TensorRT-LLM",
        description="A protocol replica: the simulator (deterministic filler text, configured latencies) behind "
                    "an engine's exact wire protocol, for tests, benchmarks and demos. It is not an engine.",
        epilog="examples:\n  lockgate sim-server --protocol vllm --port 8100 --model tiny\n"
               "  lockgate sim-server --protocol sglang --ttft-ms 50 --tpot-ms 15\n"
               "  lockgate sim-server --protocol trtllm --sim tokens_per_chunk=2 --sim max_model_len=4096\n"
               "  lockgate sim-server --protocol vllm --request-log /tmp/engine-requests.jsonl\n")
    parser.add_argument("--protocol", choices=PROTOCOLS, required=True, help="which engine's protocol to speak")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, help="listen port (default: the engine's, 8000 or 30000)")
    parser.add_argument("--model", default="sim", help="served model name (default: sim)")
    parser.add_argument("--ttft-ms", type=float, help="simulated prefill time")
    parser.add_argument("--tpot-ms", type=float, help="simulated time per output token")
    parser.add_argument("--max-model-len", type=int, help="simulated context length")
    parser.add_argument("--request-log", metavar="FILE",
                        help="append one JSON line per request received (path, traceparent, x-request-id, "
                             "the body's priority, the client's port)")
    parser.add_argument("--sim", action="append", default=[], metavar="KEY=VALUE",
                        help="any other simulator option (see SimOptions), repeatable")
    parser.set_defaults(func=_run)


def _run(args: argparse.Namespace) -> int:
    options = _sim_pairs(args.sim)
    for key in ("ttft_ms", "tpot_ms", "max_model_len"):
        value = getattr(args, key)
        if value is not None:
            options[key] = value
    try:
        app = replica_app(args.protocol, args.model, options)
    except msgspec.ValidationError as exc:
        raise SystemExit(f"lockgate sim-server: invalid simulator option: {exc}") from None
    port = args.port if args.port is not None else DEFAULT_PORTS[args.protocol]
    print(f"lockgate sim-server: {args.protocol} protocol replica (simulated engine, not a real one) "
          f"serving model {args.model!r} on http://{args.host}:{port}", flush=True)
    served: ReplicaApp | RequestLog = RequestLog(app, Path(args.request_log)) if args.request_log else app
    uvicorn.run(served, host=args.host, port=port, log_level="warning", lifespan="on")
    return 0
