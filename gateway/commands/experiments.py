"""``lockgate experiments show``: the experiment readout of a running gateway, as a table or JSON."""

from __future__ import annotations

import argparse
import json
import os
import sys
from typing import Any

import httpx

EPILOG = """\
examples:
  lockgate experiments show --url http://127.0.0.1:8000 --admin-key "$ADMIN_KEY"
  LOCKGATE_ADMIN_KEY=... lockgate experiments show --model chat --json
"""


def add_parser(sub: Any) -> None:
    exp = sub.add_parser("experiments", help="read A/B arms and shadow pairs from a running gateway")
    esub = exp.add_subparsers(dest="experiments_command", metavar="SUBCOMMAND", required=True)
    show = esub.add_parser("show", help="per-arm and per-shadow-pair latency, errors and paired differences",
                           epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    show.add_argument("--url", default="http://127.0.0.1:8000", help="gateway base URL")
    show.add_argument("--admin-key", default=os.environ.get("LOCKGATE_ADMIN_KEY"),
                      help="admin key (default: $LOCKGATE_ADMIN_KEY)")
    show.add_argument("--model", help="only this model")
    show.add_argument("--json", action="store_true", help="print the raw JSON readout")
    show.set_defaults(func=_show)


def _ms(v: float | None) -> str:
    return "-" if v is None else f"{v * 1000:.1f}"


def _show(args: argparse.Namespace) -> int:
    headers = {"Authorization": f"Bearer {args.admin_key}"} if args.admin_key else {}
    try:
        resp = httpx.get(args.url.rstrip("/") + "/v1/lockgate/experiments", headers=headers, timeout=10)
    except httpx.HTTPError as exc:
        print(f"lockgate: cannot reach {args.url}: {exc}", file=sys.stderr)
        return 1
    if resp.status_code != 200:
        message = resp.json().get("error", {}).get("message", resp.text) if resp.content else resp.reason_phrase
        print(f"lockgate: {resp.status_code}: {message}", file=sys.stderr)
        return 1
    models = {k: v for k, v in resp.json()["models"].items() if args.model in (None, k)}
    if args.json:
        print(json.dumps(models, indent=2))
        return 0
    for model, report in models.items():
        print(f"model {model}")
        print(f"  {'arm':<20} {'requests':>8} {'err%':>6} {'out tok':>8} {'TTFT p50/p99 ms':>17} "
              f"{'TPOT p50 ms':>11} {'ITL p50 ms':>10}")
        for arm, r in report["arms"].items():
            print(f"  {arm:<20} {r['requests']:>8} {100 * r['error_rate']:>5.1f}% {r['completion_tokens']:>8} "
                  f"{_ms(r['ttft']['p50']) + '/' + _ms(r['ttft']['p99']):>17} {_ms(r['tpot']['p50']):>11} "
                  f"{_ms(r['itl']['p50']):>10}")
        for pair, s in report["shadows"].items():
            print(f"  shadow {pair}: {s['pairs']} pairs; primary errors {s['primary']['errors']}, "
                  f"shadow errors {s['shadow']['errors']}")
            for name, d in s["difference"].items():
                if d["mean"] is not None:
                    ci = "" if d["ci95_low"] is None else f" (95% CI {_ms(d['ci95_low'])} .. {_ms(d['ci95_high'])})"
                    print(f"    {name}: shadow - primary = {_ms(d['mean'])} ms over {d['n']} pairs{ci}")
    if not models:
        print("no experiment data yet")
    return 0
