"""``lockgate keys create|list|show|revoke|update|usage``: manage inference keys through a running gateway's
admin API (``/v1/lockgate/keys``), as a table or JSON."""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import sys
from typing import Any

import httpx

EPILOG = """\
examples:
  export LOCKGATE_ADMIN_KEY=...                 (or pass --admin-key; --url defaults to http://127.0.0.1:8000)
  lockgate keys create --name search-team --rpm 600 --tpm 200000 --max-concurrent 20 --model chat
  lockgate keys create --name batch --priority 0 --expires 2027-01-31 --json
  lockgate keys list
  lockgate keys show key_3f2a9c0d11e4b6a7
  lockgate keys update key_3f2a9c0d11e4b6a7 --rpm 1200 --no-tpm
  lockgate keys revoke key_3f2a9c0d11e4b6a7
  lockgate keys usage key_3f2a9c0d11e4b6a7 --days 30
"""

COLUMNS = (("id", 22), ("name", 16), ("models", 16), ("prio", 4), ("rpm", 8), ("tpm", 9), ("conc", 5),
           ("expires", 10), ("state", 8))


def add_parser(sub: Any) -> None:
    keys = sub.add_parser("keys", help="create, list, update and revoke API keys of a running gateway",
                          epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    ksub = keys.add_subparsers(dest="keys_command", metavar="SUBCOMMAND", required=True)

    def command(name: str, help: str, example: str) -> argparse.ArgumentParser:
        p: argparse.ArgumentParser = ksub.add_parser(name, help=help, epilog=f"examples:\n{example}",
                                                     formatter_class=argparse.RawDescriptionHelpFormatter)
        p.add_argument("--url", default=os.environ.get("LOCKGATE_URL", "http://127.0.0.1:8000"),
                       help="gateway base URL (default: $LOCKGATE_URL, else http://127.0.0.1:8000)")
        p.add_argument("--admin-key", default=os.environ.get("LOCKGATE_ADMIN_KEY"),
                       help="admin key (default: $LOCKGATE_ADMIN_KEY)")
        p.add_argument("--json", action="store_true", help="print the API's JSON instead of a table")
        return p

    create = command("create", "create a key; its secret is printed once",
                     "  lockgate keys create --name search-team --rpm 600 --tpm 200000 --model chat\n"
                     "  lockgate keys create --name nightly --priority 0 --max-concurrent 4 --expires 2027-01-31\n")
    create.add_argument("--name", required=True, help="who the key is for (shown in metrics and usage)")
    _limit_args(create, update=False)
    create.set_defaults(func=_create)

    lst = command("list", "list keys (config keys too; never secrets)", "  lockgate keys list\n"
                  "  lockgate keys list --json | jq '.data[].id'\n")
    lst.set_defaults(func=_list)

    for name, func, help in (("show", _show, "show one key"), ("revoke", _revoke, "revoke a key (refused from "
                             "now on; other gateways follow within tenants.key_cache_s)")):
        p = command(name, help, f"  lockgate keys {name} key_3f2a9c0d11e4b6a7\n")
        p.add_argument("key_id")
        p.set_defaults(func=func)

    update = command("update", "change a key's name, models, priority, limits or expiry",
                     "  lockgate keys update key_3f2a9c0d11e4b6a7 --rpm 1200 --no-tpm\n"
                     "  lockgate keys update key_3f2a9c0d11e4b6a7 --model chat --model embed --priority 1\n")
    update.add_argument("key_id")
    update.add_argument("--name", help="new name")
    _limit_args(update, update=True)
    update.set_defaults(func=_update)

    usage = command("usage", "requests, tokens and errors per day and model",
                    "  lockgate keys usage key_3f2a9c0d11e4b6a7 --days 30\n")
    usage.add_argument("key_id")
    usage.add_argument("--days", type=int, default=7, help="days back, today included (default 7)")
    usage.set_defaults(func=_usage)


def _limit_args(p: argparse.ArgumentParser, update: bool) -> None:
    p.add_argument("--model", action="append", dest="models", metavar="MODEL",
                   help="a model the key may use (repeatable; default: all)")
    p.add_argument("--priority", type=int, help="priority band 0-7 (higher is served first; default 0)")
    p.add_argument("--rpm", type=int, help="requests per minute")
    p.add_argument("--tpm", type=int, help="tokens per minute (prompt + completion)")
    p.add_argument("--max-concurrent", type=int, help="requests in flight at once")
    p.add_argument("--expires", help="expiry: YYYY-MM-DD (UTC midnight) or unix seconds")
    if update:
        p.add_argument("--all-models", action="store_true", help="allow every model again")
        for name in ("rpm", "tpm", "max-concurrent", "expires"):
            p.add_argument(f"--no-{name}", action="store_true", help=f"remove the {name} limit" if name != "expires"
                           else "remove the expiry")


def _expiry(text: str) -> int:
    if text.isdigit():
        return int(text)
    try:
        return int(dt.datetime.fromisoformat(text).replace(tzinfo=dt.UTC).timestamp())
    except ValueError:
        raise SystemExit(f"lockgate: --expires {text!r}: use YYYY-MM-DD or unix seconds") from None


def _spec(args: argparse.Namespace) -> dict[str, Any]:
    spec: dict[str, Any] = {}
    if args.name is not None:
        spec["name"] = args.name
    if args.models:
        spec["models"] = args.models
    for field in ("priority", "rpm", "tpm", "max_concurrent"):
        if getattr(args, field) is not None:
            spec[field] = getattr(args, field)
    if args.expires is not None:
        spec["expires_at"] = _expiry(args.expires)
    if getattr(args, "all_models", False):
        spec["models"] = []
    for field in ("rpm", "tpm", "max_concurrent", "expires"):
        if getattr(args, f"no_{field}", False):
            spec["expires_at" if field == "expires" else field] = None
    return spec


def _call(args: argparse.Namespace, method: str, path: str, body: dict[str, Any] | None = None,
          params: dict[str, Any] | None = None) -> dict[str, Any] | None:
    headers = {"Authorization": f"Bearer {args.admin_key}"} if args.admin_key else {}
    try:
        resp = httpx.request(method, args.url.rstrip("/") + path, json=body, params=params, headers=headers,
                             timeout=10)
    except httpx.HTTPError as exc:
        print(f"lockgate: cannot reach {args.url}: {exc}", file=sys.stderr)
        return None
    try:
        data: dict[str, Any] = resp.json()
    except ValueError:
        data = {}
    if resp.status_code >= 400:
        message = data.get("error", {}).get("message") if isinstance(data.get("error"), dict) else None
        print(f"lockgate: {resp.status_code}: {message or resp.text or resp.reason_phrase}", file=sys.stderr)
        return None
    return data


def _date(ts: int | None) -> str:
    return "-" if ts is None else dt.datetime.fromtimestamp(ts, dt.UTC).strftime("%Y-%m-%d")


def _row(key: dict[str, Any]) -> str:
    state = "revoked" if key["revoked_at"] else (
        "expired" if key["expires_at"] and key["expires_at"] <= dt.datetime.now(dt.UTC).timestamp() else "active")
    cells = [key["id"], key["name"], ",".join(key["models"]) or "all", key["priority"], key["rpm"] or "-",
             key["tpm"] or "-", key["max_concurrent"] or "-", _date(key["expires_at"]), state]
    return " ".join(f"{c!s:<{w}}" for c, (_, w) in zip(cells, COLUMNS, strict=True)).rstrip()


def _header() -> str:
    return " ".join(f"{name:<{w}}" for name, w in COLUMNS).rstrip()


def _print_keys(args: argparse.Namespace, data: dict[str, Any], keys: list[dict[str, Any]]) -> int:
    if args.json:
        print(json.dumps(data, indent=2))
        return 0
    print(_header())
    for key in keys:
        print(_row(key))
    return 0


def _create(args: argparse.Namespace) -> int:
    data = _call(args, "POST", "/v1/lockgate/keys", _spec(args))
    if data is None:
        return 1
    if args.json:
        print(json.dumps(data, indent=2))
        return 0
    _print_keys(args, data, [data])
    print(f"\nsecret: {data['secret']}\n(shown once: only its hash is stored)")
    return 0


def _list(args: argparse.Namespace) -> int:
    data = _call(args, "GET", "/v1/lockgate/keys")
    return 1 if data is None else _print_keys(args, data, data["data"])


def _show(args: argparse.Namespace) -> int:
    data = _call(args, "GET", f"/v1/lockgate/keys/{args.key_id}")
    return 1 if data is None else _print_keys(args, data, [data])


def _revoke(args: argparse.Namespace) -> int:
    data = _call(args, "DELETE", f"/v1/lockgate/keys/{args.key_id}")
    return 1 if data is None else _print_keys(args, data, [data])


def _update(args: argparse.Namespace) -> int:
    spec = _spec(args)
    if not spec:
        print("lockgate: nothing to change (see --help)", file=sys.stderr)
        return 2
    data = _call(args, "PATCH", f"/v1/lockgate/keys/{args.key_id}", spec)
    return 1 if data is None else _print_keys(args, data, [data])


def _usage(args: argparse.Namespace) -> int:
    data = _call(args, "GET", f"/v1/lockgate/keys/{args.key_id}/usage", params={"days": args.days})
    if data is None:
        return 1
    if args.json:
        print(json.dumps(data, indent=2))
        return 0
    fields = ("requests", "prompt_tokens", "completion_tokens", "errors", "rate_limited")
    print(f"{'date':<10} {'model':<20} " + " ".join(f"{f:>17}" for f in fields))
    for row in [*data["data"], *data["totals"]]:
        print(f"{row['date']:<10} {row['model']:<20} " + " ".join(f"{row[f]:>17}" for f in fields))
    if not data["data"]:
        print(f"no usage in the last {data['days']} day(s)")
    return 0
