"""Per-request rows small enough to bring back from the GPU machine, and where the slow first tokens waited.

    python3 -m bench.gpu.slim_requests slim RUN_DIR OUT.jsonl.xz     # every requests.jsonl under RUN_DIR
    python3 -m bench.gpu.slim_requests tail OUT.jsonl.xz [--slo-ms 500] [--top 0.01] [--summary RUN/summary.json]

A c=256 run's requests.jsonl holds every chunk's arrival (256 per request) and is too big for the `device` tool's
16 MiB per file; `slim` keeps one row per request: its send time, the client's TTFT and end, the largest gap
between chunks, and lockgate's own split of the first token from its response headers (queue, the engine call's
connect, head and first chunk, relay, the gateway's TTFT).
`tail` prints, per (target, load), the client's TTFT percentiles (lockgate bench's own, so they match its
summary of the measured window) and the mean split of the slowest requests (those
over the SLO, or the slowest `--top` share) beside the rest's: whether slow first tokens waited in lockgate's queue,
in the engine leg (the worker's call plus vLLM's own TTFT), in the relay, or before the gateway saw them.
"""

from __future__ import annotations

import argparse
import itertools
import lzma
import statistics
import sys
from collections import defaultdict
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import msgspec

from bench.gpu.tables import load as load_label  # run from the repo root: python3 -m bench.gpu.slim_requests
from loadtest.stats import percentile

SPLIT = ("queue", "engine-connect", "engine-head", "engine-ttft", "relay", "ttft")
"""lockgate's x-lockgate-NAME-ms headers, in the order the first token passes them (ttft: the gateway's own;
engine-connect and engine-head are parts of engine-ttft, sent by the HTTP adapters' lean client)."""


class Slim(msgspec.Struct, kw_only=True, omit_defaults=True):
    run: str
    target: str
    point: int
    load: str = ""
    """The point's load as the tables name it ("c=256", "40.0 req/s"), from the summary.json beside the requests."""
    round: int
    index: int
    measured: bool
    outcome: str
    ttft_ms: float | None = None
    e2e_ms: float
    n_out: int | None = None
    max_gap_ms: float | None = None
    split: dict[str, float] = {}
    send_s: float | None = None
    """When the client sent it, on the run's clock (seconds): how arrivals bunch (a closed loop's waves)."""


def loads(summary: Path) -> dict[int, str]:
    """Point index -> its load, from lockgate bench's summary.json (the requests only carry the index)."""
    if not summary.is_file():
        return {}
    return {p["point"]: load_label(p) for p in msgspec.json.decode(summary.read_bytes()).get("points", [])}


def slim_rows(run_dir: Path) -> Iterator[Slim]:
    dec = msgspec.json.Decoder()
    for path in sorted(run_dir.rglob("requests.jsonl")):
        run = str(path.parent.relative_to(run_dir))
        names = loads(path.parent / "summary.json")
        with path.open("rb") as fh:
            for line in fh:
                if line.strip():
                    row = _slim(run, dec.decode(line))
                    row.load = names.get(row.point, "")
                    yield row


def _slim(run: str, r: dict[str, Any]) -> Slim:
    send = r["t_send"]
    offsets = r.get("chunk_offsets") or []
    gaps = [b - a for a, b in itertools.pairwise(offsets)]
    headers = r.get("gateway_headers") or {}
    split = {}
    for name in SPLIT:
        value = headers.get(f"x-lockgate-{name}-ms")
        if value is not None:
            split[name] = float(value)
    return Slim(run=run, target=r["target"], point=r["point"], round=r["round"], index=r["index"],
                measured=r.get("measured", True), outcome=r.get("outcome", "error"),
                ttft_ms=None if r.get("t_first") is None else (r["t_first"] - send) * 1000,
                e2e_ms=(r["t_end"] - send) * 1000, n_out=r.get("n_out"),
                max_gap_ms=max(gaps) * 1000 if gaps else None, split=split, send_s=send)


def write(rows: Iterable[Slim], out: Path) -> int:
    enc = msgspec.json.Encoder()
    n = 0
    with lzma.open(out, "wb") as fh:
        for row in rows:
            fh.write(enc.encode(row) + b"\n")
            n += 1
    return n


def read(path: Path) -> list[Slim]:
    dec = msgspec.json.Decoder(Slim)
    with lzma.open(path, "rb") as fh:
        return [dec.decode(line) for line in fh if line.strip()]


def tail_table(rows: list[Slim], slo_ms: float, top: float) -> list[str]:
    """Markdown: per (target, load), TTFT p50/p99 and the split of the slow requests against the others'."""
    groups: dict[tuple[str, str], list[Slim]] = defaultdict(list)
    for row in rows:
        if row.measured and row.outcome == "ok" and row.ttft_ms is not None:
            groups[(row.target, row.load or f"point {row.point}")].append(row)
    out = ["| target | load | n | TTFT p50 / p99 | slow: rule, n | slow: client TTFT | "
           + " | ".join(f"slow / rest: {name}" for name in SPLIT)
           + " | slow / rest: before the gateway | slow / rest: on a new engine connection |",
           "|---|---|---:|---|---|---:|" + "---:|" * (len(SPLIT) + 2)]
    for (target, load), group in sorted(groups.items()):
        ttfts = sorted(r.ttft_ms for r in group if r.ttft_ms is not None)
        over = [r for r in group if r.ttft_ms is not None and r.ttft_ms > slo_ms]
        rule = f"> {slo_ms:g} ms"
        if not over:  # none over the SLO: the slowest share says where the tail is
            cut = percentile(ttfts, (1 - top) * 100)
            over = [r for r in group if r.ttft_ms is not None and r.ttft_ms >= cut]
            rule = f"slowest {top:.0%}"
        slow_ids = {id(r) for r in over}
        rest = [r for r in group if id(r) not in slow_ids]
        cells = [target, load, str(len(group)), f"{percentile(ttfts, 50):.1f} / {percentile(ttfts, 99):.1f}",
                 f"{rule}, {len(over)}", f"{_mean([r.ttft_ms for r in over]):.1f}"]
        for name in SPLIT:
            cells.append(_pair(over, rest, lambda r, n=name: r.split.get(n)))
        cells.append(_pair(over, rest, _before_gateway))
        cells.append(f"{_new_share(over)} / {_new_share(rest)}")
        out.append("| " + " | ".join(cells) + " |")
    return out


def _before_gateway(row: Slim) -> float | None:
    """Client TTFT less the gateway's: the client's and the gateway's intake, and the last hop to the client."""
    gateway = row.split.get("ttft")
    return None if gateway is None or row.ttft_ms is None else row.ttft_ms - gateway


def _new_share(rows: list[Slim]) -> str:
    """The share of ``rows`` whose engine call opened a connection, of those that say (the lean client's)."""
    told = [r.split["engine-connect"] for r in rows if "engine-connect" in r.split]
    return f"{sum(v > 0 for v in told) / len(told):.0%}" if told else "-"


def _mean(values: Iterable[float | None]) -> float:
    present = [v for v in values if v is not None]
    return statistics.fmean(present) if present else float("nan")


def _pair(slow: list[Slim], rest: list[Slim], get: Any) -> str:
    a, b = _mean(get(r) for r in slow), _mean(get(r) for r in rest)
    return "-" if a != a and b != b else f"{a:.1f} / {b:.1f}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="cmd", required=True)
    p_slim = sub.add_parser("slim", help="one small row per request, xz-compressed")
    p_slim.add_argument("run_dir", type=Path)
    p_slim.add_argument("out", type=Path)
    p_tail = sub.add_parser("tail", help="where the slow first tokens waited (Markdown)")
    p_tail.add_argument("file", type=Path, nargs="+")
    p_tail.add_argument("--slo-ms", type=float, default=500.0)
    p_tail.add_argument("--top", type=float, default=0.01, help="share called slow when none is over the SLO")
    p_tail.add_argument("--summary", type=Path, help="the run's summary.json, for rows slimmed without it")
    args = parser.parse_args(argv)
    if args.cmd == "slim":
        n = write(slim_rows(args.run_dir), args.out)
        print(f"{n} requests -> {args.out} ({args.out.stat().st_size // 1024} KiB)")
        return 0 if n else 1
    rows = [row for f in args.file for row in read(f)]
    if args.summary is not None:
        names = loads(args.summary)
        for row in rows:
            row.load = row.load or names.get(row.point, "")
    print("\n".join(tail_table(rows, args.slo_ms, args.top)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
