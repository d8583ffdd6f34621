"""Output tokens/s of the in-process engines: continuous batching at several concurrencies vs sequential.

Drives the backend object directly (no HTTP), as the worker does. Each concurrency level starts C requests at
once, each generating exactly --max-tokens tokens (ignore_eos, greedy); tokens/s = all tokens / wall time.
"Sequential" serves --sequential-requests requests one after another on the same engine (batch size 1).

CPU (here): .venv/bin/python bench/inprocess.py --concurrency 1 8 32 --torch-threads 1
GPU (H100): python3 bench/inprocess.py --shape qwen2.5-1.5b --device cuda --dtype bfloat16 --kinds hf \\
                --concurrency 1 32 128 --max-tokens 128
Models are random-weight Llamas built on the spot (weights don't change the cost): ``tiny`` (hidden 128,
2 layers) or ``qwen2.5-1.5b`` (Qwen2.5-1.5B's sizes on a Llama config; the vocabulary is the BPE's, smaller
than Qwen's 151,936).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import msgspec

from backends.events import Completed, Delta, Failed
from backends.inproc.adapter import InprocBackend
from backends.inproc.random_model import LlamaShape, build_random_llama
from backends.protocol import HealthState
from backends.request import ChatMessage, GenerationRequest

SHAPES = {
    "tiny": (LlamaShape(), {}),
    "qwen2.5-1.5b": (
        LlamaShape(hidden=1536, intermediate=8960, layers=28, heads=12, kv_heads=2, vocab=32000,
                   max_position=4096, dtype="bfloat16"),
        {"sentences": 200_000, "pseudo_words": 60_000},
    ),
}


def make_backend(kind: str, model: Path, args: argparse.Namespace, batch: int) -> InprocBackend:
    options: dict[str, Any] = {"model": str(model), "device": args.device, "max_batch_size": batch,
                               "max_batch_tokens": batch * (args.max_tokens + 64) + 1024, "max_waiting": 4 * batch}
    if kind == "hf":
        from backends.hf.options import HfOptions
        from backends.hf.plugin import plugin as hf_plugin

        hf_options = options | {"dtype": args.dtype}
        if args.torch_threads:
            hf_options["torch_threads"] = args.torch_threads
        return hf_plugin.create("bench-hf", msgspec.convert(hf_options, HfOptions))
    from backends.onnx.options import OnnxOptions
    from backends.onnx.plugin import plugin as onnx_plugin

    if kind == "onnx-genai":
        options |= {"batching": "genai"}
    return onnx_plugin.create(f"bench-{kind}", msgspec.convert(options, OnnxOptions))


async def one(backend: InprocBackend, i: int, max_tokens: int) -> int:
    request = GenerationRequest(
        request_id=f"bench-{i}", model="m", operation="chat", max_tokens=max_tokens, temperature=0.0,
        messages=(ChatMessage("user", f"request {i}: the engine runs the batch over the queue, fast."),),
        extra={"ignore_eos": True})
    tokens = 0
    async for event in backend.generate(request):
        if isinstance(event, Delta):
            tokens += event.tokens
        elif isinstance(event, Failed):
            raise RuntimeError(f"request {i} failed: {event.message}")
        elif isinstance(event, Completed):
            assert event.completion_tokens == max_tokens, event
    return tokens


async def measure(backend: InprocBackend, concurrency: int, max_tokens: int) -> dict[str, float]:
    start = time.perf_counter()
    counts = await asyncio.gather(*(one(backend, i, max_tokens) for i in range(concurrency)))
    wall = time.perf_counter() - start
    return {"requests": concurrency, "tokens": sum(counts), "wall_s": wall, "tok_s": sum(counts) / wall}


async def sequential(backend: InprocBackend, n: int, max_tokens: int) -> dict[str, float]:
    start = time.perf_counter()
    total = 0
    for i in range(n):
        total += await one(backend, i, max_tokens)
    wall = time.perf_counter() - start
    return {"requests": n, "tokens": total, "wall_s": wall, "tok_s": total / wall}


async def run_kind(kind: str, model: Path, args: argparse.Namespace) -> list[dict[str, Any]]:
    top = max(args.concurrency)
    backend = make_backend(kind, model, args, top)
    await backend.start()
    while backend.inproc is None:  # the model loads in the background
        health = await backend.health()
        if health.state is HealthState.DOWN:
            raise RuntimeError(health.reason)
        await asyncio.sleep(0.1)
    rows: list[dict[str, Any]] = []
    try:
        await measure(backend, min(4, top), 8)  # warm-up: allocator, kernels, first-call paths
        seq = await sequential(backend, args.sequential_requests, args.max_tokens)
        rows.append({"kind": kind, "mode": "sequential", **seq})
        print(json.dumps(rows[-1]), flush=True)
        for c in args.concurrency:
            result = await measure(backend, c, args.max_tokens)
            assert backend.inproc is not None
            steps = backend.inproc.steps
            recent = list(steps)[-args.max_tokens:]
            peak = max((s.batch_size for s in recent), default=0)
            at_peak = [s.duration_ns for s in recent if s.batch_size == peak]
            rows.append({"kind": kind, "mode": f"batched c={c}", **result, "peak_batch": peak,
                         "step_ms_at_peak": sum(at_peak) / max(1, len(at_peak)) / 1e6,
                         "vs_sequential": result["tok_s"] / seq["tok_s"]})
            print(json.dumps(rows[-1]), flush=True)
    finally:
        await backend.close()
    return rows


def build_models(args: argparse.Namespace, root: Path) -> dict[str, Path]:
    shape, extra = SHAPES[args.shape]
    hf_dir = Path(args.model) if args.model else build_random_llama(
        root / "hf", shape, device=args.device.split(":")[0] if args.device != "cpu" else "cpu",
        sentences=extra.get("sentences", 2000), pseudo_words=extra.get("pseudo_words", 0))
    models = {"hf": hf_dir}
    if {"onnx", "onnx-genai"} & set(args.kinds):
        out = root / "onnx"
        on_cpu = args.device == "cpu"
        subprocess.run([sys.executable, "-m", "gateway.cli", "models", "export-onnx", str(hf_dir), str(out),
                        "-p", "fp32" if on_cpu else "fp16", "-e", "cpu" if on_cpu else "cuda"],
                       check=True, capture_output=True)
        models["onnx"] = models["onnx-genai"] = out
    return models


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    kinds = ["hf", "onnx", "onnx-genai"]
    parser.add_argument("--kinds", nargs="+", choices=kinds, default=kinds,
                        help="onnx: lockgate's batching on onnxruntime; onnx-genai: onnxruntime-genai's Engine")
    parser.add_argument("--shape", choices=sorted(SHAPES), default="tiny")
    parser.add_argument("--model", help="use this HF model directory instead of building one")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--dtype", default="auto")
    parser.add_argument("--torch-threads", type=int, help="hf: PyTorch intra-op threads (default: PyTorch's)")
    parser.add_argument("--concurrency", nargs="+", type=int, default=[1, 8, 32])
    parser.add_argument("--max-tokens", type=int, default=64)
    parser.add_argument("--sequential-requests", type=int, default=4)
    parser.add_argument("--json-out", help="also write all rows here")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="lockgate-bench-") as tmp:
        t0 = time.perf_counter()
        models = build_models(args, Path(tmp))
        print(f"# models built in {time.perf_counter() - t0:.1f}s: {models}", flush=True)
        rows: list[dict[str, Any]] = []
        for kind in args.kinds:
            rows += asyncio.run(run_kind(kind, models[kind], args))
    print("| kind | mode | requests | tokens | wall s | tokens/s | peak batch | step ms at peak | x sequential |")
    print("|---|---|---:|---:|---:|---:|---:|---:|---:|")
    for r in rows:
        print(f"| {r['kind']} | {r['mode']} | {r['requests']} | {r['tokens']} | {r['wall_s']:.2f} | {r['tok_s']:.1f} "
              f"| {r.get('peak_batch', 1)} | {r.get('step_ms_at_peak', 0):.1f} | {r.get('vs_sequential', 1.0):.2f} |")
    if args.json_out:
        Path(args.json_out).write_text(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()
