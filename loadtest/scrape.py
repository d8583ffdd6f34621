"""Before/after snapshots of a target's Prometheus ``/metrics``: the deltas of its counters over a run."""

from __future__ import annotations

import httpx

from loadtest.config import Target

_COUNTER_SUFFIXES = ("_total", "_count", "_sum")


def metrics_url(target: Target) -> str:
    root = target.base_url.rstrip("/")
    return (root[: -len("/v1")] if root.endswith("/v1") else root) + "/metrics"


def parse(text: str) -> dict[str, float]:
    """Series (name with labels) -> value, for counter-like series; comments and gauges are skipped."""
    out: dict[str, float] = {}
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        series, _, rest = line.rpartition(" ") if "}" not in line else (
            line[: line.rindex("}") + 1], " ", line[line.rindex("}") + 1:])
        value = rest.split()[0] if rest.split() else ""
        name = series.split("{", 1)[0].strip()
        if not name.endswith(_COUNTER_SUFFIXES):
            continue
        try:
            out[series.strip()] = float(value)
        except ValueError:
            continue
    return out


def snapshot(target: Target, timeout_s: float = 5.0) -> dict[str, float] | None:
    """None when the target has no /metrics (the report then says so instead of showing zeros)."""
    headers = {"authorization": f"Bearer {target.api_key}"} if target.api_key else {}
    try:
        resp = httpx.get(metrics_url(target), headers=headers, timeout=timeout_s)
    except httpx.HTTPError:
        return None
    return parse(resp.text) if resp.status_code == 200 else None


def delta(before: dict[str, float] | None, after: dict[str, float] | None) -> dict[str, float] | None:
    if before is None or after is None:
        return None
    return {k: v - before.get(k, 0.0) for k, v in sorted(after.items()) if v != before.get(k, 0.0)}
