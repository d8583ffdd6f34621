"""``lockgate bench`` end to end: two targets on the gateway, every output file, then ``bench compare``."""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from pathlib import Path

from loadtest.bench import BenchResult
from loadtest.output.files import read_summary
from tests.support.bench import REPO, gateway


def _lockgate(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "gateway.cli", *args], cwd=REPO, capture_output=True, text=True,
                          timeout=120, check=False, env={**os.environ, "PYTHONPATH": str(REPO)})


def test_help_shows_examples() -> None:
    out = _lockgate("bench", "--help")
    assert out.returncode == 0
    assert "examples:" in out.stdout
    assert "lockgate bench compare" in out.stdout


def test_bench_writes_every_output_and_compare_diffs_two_runs(tmp_path: Path) -> None:
    with gateway({"fast": {"ttft_ms": 10, "tpot_ms": 2}, "slow": {"ttft_ms": 30, "tpot_ms": 4}}) as url:
        runs = []
        for name, rate, endpoint in (("a", "20", "chat"), ("b", "30", "completions")):
            out = tmp_path / name
            res = _lockgate("bench", "--target", f"{url},model=fast,label=fast", "--target",
                            f"{url},model=slow,label=slow", "--rate", rate, "--arrival", "gamma", "--burstiness",
                            "0.5", "-n", "12", "--warmup", "2", "--input-len", "uniform:16:4", "--output-len", "8",
                            "--slo-ttft-ms", "20", "--rounds", "2", "--no-self-check", "--scrape-metrics",
                            "--endpoint", endpoint, "--out", str(out))
            assert res.returncode == 0, res.stderr
            runs.append(out)
    a = runs[0]
    assert "fast" in res.stdout
    assert "TTFT p50" in res.stdout

    rows = [json.loads(line) for line in (a / "requests.jsonl").read_text().splitlines()]
    assert len(rows) == 2 * 2 * 12  # targets x rounds x requests
    assert sum(not r["measured"] for r in rows) == 2 * 2 * 2
    assert {r["outcome"] for r in rows} == {"ok"}
    assert all(r["request_id"] for r in rows)
    assert all(r["gateway_headers"]["x-lockgate-backend"] in ("fast", "slow") for r in rows)
    first = rows[0]
    for key in ("t_sched", "t_send", "t_first", "t_last", "chunk_offsets", "chunk_tokens", "n_out_source", "ttft",
                "ttft_sched", "tpot", "e2e"):
        assert key in first
    # The same prompts and schedule for every target and round.
    by_target: dict[str, list[tuple[int, str, float]]] = {}
    for r in rows:
        by_target.setdefault(f"{r['target']}/{r['round']}", []).append((r["index"], r["prompt_id"], r["t_sched"]))
    schedules = [sorted(v) for v in by_target.values()]
    assert all([(i, p) for i, p, _ in s] == [(i, p) for i, p, _ in schedules[0]] for s in schedules)

    summary: BenchResult = read_summary(a / "summary.json")
    fast, slow = summary.points
    assert (fast.target, slow.target) == ("fast", "slow")
    assert fast.rounds == 2
    assert fast.requests == 20
    assert fast.stats["ttft"] is not None
    assert slow.stats["ttft"] is not None
    assert fast.stats["ttft"].p50 < slow.stats["ttft"].p50
    assert fast.slo_attainment > slow.slo_attainment  # TTFT SLO of 20 ms: met by fast, missed by slow
    assert all(t.api_key is None for t in summary.spec.targets)
    # --scrape-metrics: the gateway's /metrics counters moved by this run's requests.
    assert fast.metrics_delta is not None
    assert any(k.startswith("gen_ai_server_time_to_first_token_seconds_count") for k in fast.metrics_delta)

    with (a / "summary.csv").open() as f:
        table = list(csv.DictReader(f))
    assert [r["target"] for r in table] == ["fast", "slow"]
    assert float(table[0]["ttft_p50_s"]) > 0
    assert (a / "report.html").read_text().startswith("<!DOCTYPE html>")

    cmp = _lockgate("bench", "compare", str(runs[0] / "summary.json"), str(runs[1] / "summary.json"))
    assert cmp.returncode == 0, cmp.stderr
    assert "fast vs fast at rate=20 (B: rate=30)" in cmp.stdout
    assert "TTFT p50 ms" in cmp.stdout
    b = read_summary(runs[1] / "summary.json")  # /v1/completions streams text chunks: measured all the same
    assert [p.completed for p in b.points] == [20, 20]
    assert all(p.stats["tpot"] is not None for p in b.points)


def test_bad_arguments_exit_2_with_a_reason() -> None:
    out = _lockgate("bench", "--target", "http://127.0.0.1:1/v1", "-c", "1", "-n", "1")
    assert out.returncode == 2
    assert "--model" in out.stderr
