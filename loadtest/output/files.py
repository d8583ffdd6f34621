"""Machine-readable outputs: per-request JSONL (raw timeline + derived metrics), summary JSON and CSV."""

from __future__ import annotations

import csv
import io
from collections.abc import Sequence
from pathlib import Path
from typing import IO, Any

import msgspec

from loadtest.bench import BenchResult
from loadtest.metrics import derive
from loadtest.record import RequestRecord
from loadtest.summary import PointSummary

_DERIVED = ("ttft", "ttft_sched", "e2e", "e2e_sched", "tpot", "send_lag")
STAT_COLUMNS = ("mean", "p50", "p90", "p99")
CSV_LATENCIES = ("ttft", "ttft_sched", "tpot", "itl", "icl", "e2e")


def record_row(r: RequestRecord) -> dict[str, Any]:
    row: dict[str, Any] = msgspec.to_builtins(r)
    m = derive(r)
    for name in _DERIVED:
        row[name] = getattr(m, name)
    return row


class JsonlSink:
    """Appends each phase's records as they finish, so a long run leaves data even if stopped."""

    def __init__(self, stream: IO[bytes]) -> None:
        self.stream = stream
        self._encoder = msgspec.json.Encoder()

    def __call__(self, records: Sequence[RequestRecord]) -> None:
        for r in records:
            self.stream.write(self._encoder.encode(record_row(r)) + b"\n")
        self.stream.flush()


def write_summary(result: BenchResult, path: Path) -> None:
    path.write_bytes(msgspec.json.format(msgspec.json.encode(result), indent=2) + b"\n")


def read_summary(path: Path) -> BenchResult:
    return msgspec.json.decode(path.read_bytes(), type=BenchResult)


def csv_rows(points: Sequence[PointSummary]) -> list[dict[str, Any]]:
    rows = []
    for p in points:
        row: dict[str, Any] = {
            "target": p.target, "point": p.point, p.x_name: p.x, "requests": p.requests, "completed": p.completed,
            "failed": p.failed, "incomplete": p.incomplete, "window_s": p.window_s,
            "request_throughput": p.request_throughput, "output_token_throughput": p.output_token_throughput,
            "total_token_throughput": p.total_token_throughput, "achieved_concurrency": p.achieved_concurrency,
            "goodput": p.goodput, "slo_attainment": p.slo_attainment}
        for name in CSV_LATENCIES:
            st = p.stats.get(name)
            for col in STAT_COLUMNS:
                row[f"{name}_{col}_s"] = getattr(st, col) if st else None
        rows.append(row)
    return rows


def write_csv(result: BenchResult, path: Path) -> None:
    rows = csv_rows(result.points)
    names: list[str] = []
    for row in rows:
        names.extend(k for k in row if k not in names)
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=names)
    writer.writeheader()
    writer.writerows(rows)
    path.write_text(buf.getvalue())
