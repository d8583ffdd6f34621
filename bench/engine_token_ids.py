"""What asking vLLM for each chunk's token ids costs its stream at concurrency 1.

lockgate's vLLM adapter sends ``return_token_ids`` (``token_ids = true``, its default); a direct client does not.
On the H200 at c=1 vLLM's own ITL was 4.3% higher for lockgate's requests (eighth lease, docs/gpu-bakeoff.md).
This replays one request shape against one vLLM server, with and without the flag, in alternating blocks, and
prints per block the client's mean inter-chunk time and TPOT and vLLM's own ITL (its /metrics histogram delta).

Run against the CPU engine (scripts/engines/vllm_cpu.py serve --port 8311) or any vLLM:
``.venv/bin/python bench/engine_token_ids.py --url http://127.0.0.1:8311 --model tiny --blocks 6``
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import re
import statistics
import time

import httpx

_ITL = re.compile(r'^vllm:inter_token_latency_seconds_(sum|count)\{[^}]*\} (\S+)$', re.M)


async def itl_totals(client: httpx.AsyncClient, url: str) -> tuple[float, float]:
    text = (await client.get(f"{url}/metrics")).text
    found = {kind: float(v) for kind, v in _ITL.findall(text)}
    return found.get("sum", 0.0), found.get("count", 0.0)


async def one(client: httpx.AsyncClient, url: str, model: str, tokens: int, token_ids: bool) -> list[float]:
    body: dict[str, object] = {"model": model, "prompt": "once upon a time there was a story", "max_tokens": tokens,
                               "ignore_eos": True, "stream": True, "temperature": 0}
    if token_ids:
        body["return_token_ids"] = True
    stamps = []
    async with client.stream("POST", f"{url}/v1/completions", json=body) as resp:
        resp.raise_for_status()
        async for line in resp.aiter_lines():
            if line.startswith("data: ") and line != "data: [DONE]" and json.loads(line[6:])["choices"][0].get("text"):
                stamps.append(time.perf_counter())
    return [b - a for a, b in itertools.pairwise(stamps)]


async def main(args: argparse.Namespace) -> None:
    async with httpx.AsyncClient(timeout=300) as client:
        await one(client, args.url, args.model, 16, False)  # warm
        print(f"{'block':>5} {'token ids':>9} {'client ITL ms':>13} {'vLLM ITL ms':>11}")
        per: dict[bool, list[float]] = {False: [], True: []}
        order = [flag for i in range(args.blocks) for flag in ((False, True) if i % 2 == 0 else (True, False))]
        for block, flag in enumerate(order):  # A B B A A B ...: drift hits both alike
            s0, c0 = await itl_totals(client, args.url)
            gaps: list[float] = []
            for _ in range(args.requests):
                gaps += await one(client, args.url, args.model, args.tokens, flag)
            s1, c1 = await itl_totals(client, args.url)
            vllm = (s1 - s0) / (c1 - c0) * 1000 if c1 > c0 else float("nan")
            client_ms = statistics.fmean(gaps) * 1000
            per[flag].append(vllm)
            print(f"{block:>5} {'yes' if flag else 'no':>9} {client_ms:>13.3f} {vllm:>11.3f}")
        off, on = statistics.fmean(per[False]), statistics.fmean(per[True])
        print(f"vLLM ITL with token ids / without: {on / off * 100:.1f}% ({on:.3f} / {off:.3f} ms, "
              f"{args.blocks} blocks each)")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--url", default="http://127.0.0.1:8311")
    parser.add_argument("--model", default="tiny")
    parser.add_argument("--tokens", type=int, default=128)
    parser.add_argument("--requests", type=int, default=5, help="requests per block")
    parser.add_argument("--blocks", type=int, default=4, help="blocks per setting (alternating A B B A)")
    asyncio.run(main(parser.parse_args()))
