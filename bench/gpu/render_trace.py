"""Render one trace from otlp_sink.py's JSON lines: an indented table (Markdown) and a waterfall (SVG).

    python3 bench/gpu/render_trace.py spans.jsonl --trace-id ID --md trace.md --svg trace.svg
"""

from __future__ import annotations

import argparse
import html
import json
from pathlib import Path
from typing import Any

KINDS = {0: "UNSPECIFIED", 1: "INTERNAL", 2: "SERVER", 3: "CLIENT", 4: "PRODUCER", 5: "CONSUMER"}
SHOWN = ("lockgate.backend", "lockgate.queue_wait_s", "gen_ai.response.time_to_first_chunk", "lockgate.tpot_s",
         "gen_ai.usage.input_tokens", "gen_ai.usage.output_tokens", "gen_ai.latency.time_to_first_token",
         "gen_ai.latency.time_in_queue", "gen_ai.latency.e2e", "gen_ai.usage.prompt_tokens",
         "gen_ai.usage.completion_tokens", "server.address")


def ordered(spans: list[dict[str, Any]]) -> list[tuple[int, dict[str, Any]]]:
    """Depth-first by start time; spans whose parent is missing are roots."""
    ids = {s["span_id"] for s in spans}
    children: dict[str, list[dict[str, Any]]] = {}
    for s in spans:
        children.setdefault(s["parent_span_id"] if s["parent_span_id"] in ids else "", []).append(s)
    out: list[tuple[int, dict[str, Any]]] = []

    def walk(parent: str, depth: int) -> None:
        for s in sorted(children.get(parent, []), key=lambda x: x["start_ns"]):
            out.append((depth, s))
            walk(s["span_id"], depth + 1)

    walk("", 0)
    return out


def markdown(rows: list[tuple[int, dict[str, Any]]], t0: int) -> str:
    lines = ["| span | service | kind | start (ms) | duration (ms) | attributes |", "|---|---|---|---:|---:|---|"]
    for depth, s in rows:
        attrs = ", ".join(f"`{k}`={s['attributes'][k]}" for k in SHOWN if k in s["attributes"])
        lines.append(f"| {'&nbsp;&nbsp;' * 2 * depth}{s['name']} | {s['service']} | {KINDS.get(s['kind'], s['kind'])} "
                     f"| {(s['start_ns'] - t0) / 1e6:.2f} | {(s['end_ns'] - s['start_ns']) / 1e6:.2f} | {attrs} |")
    return "\n".join(lines) + "\n"


def svg(rows: list[tuple[int, dict[str, Any]]], t0: int, t1: int) -> str:
    width, label_w, row_h = 1000, 330, 22
    scale = (width - label_w - 20) / max(1, t1 - t0)
    colors = {"lockgate": "#4c78a8", "lockgate-worker": "#72b7b2"}
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{row_h * (len(rows) + 2)}" '
             'font-family="sans-serif" font-size="12">',
             f'<text x="4" y="14">trace {html.escape(rows[0][1]["trace_id"])}: {(t1 - t0) / 1e6:.1f} ms</text>']
    for i, (depth, s) in enumerate(rows):
        y = row_h * (i + 1)
        x = label_w + (s["start_ns"] - t0) * scale
        w = max(1.0, (s["end_ns"] - s["start_ns"]) * scale)
        color = colors.get(s["service"], "#f58518")
        label = html.escape(f"{s['service']}: {s['name']}")
        parts.append(f'<text x="{4 + 12 * depth}" y="{y + 15}">{label}</text>')
        parts.append(f'<rect x="{x:.1f}" y="{y + 4}" width="{w:.1f}" height="{row_h - 8}" fill="{color}"/>')
        parts.append(f'<text x="{min(x + w + 4, width - 80):.1f}" y="{y + 15}">'
                     f'{(s["end_ns"] - s["start_ns"]) / 1e6:.1f} ms</text>')
    parts.append("</svg>")
    return "\n".join(parts) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("spans", type=Path)
    parser.add_argument("--trace-id", required=True)
    parser.add_argument("--md", type=Path, required=True)
    parser.add_argument("--svg", type=Path, required=True)
    args = parser.parse_args()
    spans = [json.loads(line) for line in args.spans.read_text().splitlines() if line.strip()]
    spans = [s for s in spans if s["trace_id"] == args.trace_id]
    if not spans:
        raise SystemExit(f"no span of trace {args.trace_id} in {args.spans}")
    rows = ordered(spans)
    t0 = min(s["start_ns"] for s in spans)
    t1 = max(s["end_ns"] for s in spans)
    args.md.write_text(markdown(rows, t0))
    args.svg.write_text(svg(rows, t0, t1))
    print(f"{len(spans)} spans from {sorted({s['service'] for s in spans})}")


if __name__ == "__main__":
    main()
