"""The HTML report opens in a real headless Chromium, logs nothing to the console and draws its charts."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from backends.sim import SimOptions
from loadtest import SLO, BenchSpec, DatasetSpec, LengthDist, LoadShape, Target, run_bench
from loadtest.output import html
from tests.support.bench import REPO, serve, sim_handler

FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--enable-logging=stderr", "--v=0", "--window-size=1280,2600")
CONSOLE = re.compile(r":CONSOLE[:(]")


@pytest.fixture(scope="module")
def chromium() -> str:
    subprocess.run([sys.executable, str(REPO / "scripts" / "ensure_chromium.py")], check=False)
    path = shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")
    if path is None:
        if os.environ.get("CI"):
            pytest.fail("chromium is missing: make chromium installs it")
        pytest.skip("chromium is not installed (make chromium)")
    return path


def _browse(chromium: str, page: Path, tmp: Path, *extra: str) -> tuple[str, str]:
    out = subprocess.run([chromium, *FLAGS, f"--user-data-dir={tmp / 'profile'}", *extra, page.as_uri()],
                         capture_output=True, text=True, timeout=120, check=False)
    return out.stdout, out.stderr


def test_the_console_check_catches_errors(chromium: str, tmp_path: Path) -> None:
    page = tmp_path / "bad.html"
    page.write_text("<html><body><script>console.error('boom'); notDefined();</script></body></html>")
    _, stderr = _browse(chromium, page, tmp_path, "--dump-dom")
    lines = [ln for ln in stderr.splitlines() if CONSOLE.search(ln)]
    assert any("boom" in ln for ln in lines)
    assert any("notDefined" in ln for ln in lines)


def test_the_report_renders_its_charts_in_chromium(chromium: str, tmp_path: Path) -> None:
    with serve(sim_handler(SimOptions(ttft_ms=15, tpot_ms=3, slowdown_per_running=0.05))) as url:
        result = run_bench(BenchSpec(
            targets=(Target(base_url=url, model="sim", label="sim-A"),
                     Target(base_url=url, model="sim", label="sim-B")),
            loads=(LoadShape(concurrency=1), LoadShape(concurrency=2), LoadShape(concurrency=4)), num_requests=12,
            dataset=DatasetSpec(input_len=LengthDist(mean=8), output_len=LengthDist(kind="uniform", mean=12, spread=4)),
            slo=SLO(ttft_s=0.05, tpot_s=0.004)))
    page = tmp_path / "report.html"
    page.write_text(html.render(result))
    assert not re.search(r"(src|href)=[\"']?(https?:|//)|url\(", page.read_text())  # nothing to fetch: offline

    dom, stderr = _browse(chromium, page, tmp_path, "--dump-dom")
    console = [ln for ln in stderr.splitlines() if CONSOLE.search(ln)]
    assert console == []
    charts = re.search(r'data-charts="(\d+)"', dom)
    assert charts is not None, "the report's script did not run"
    assert int(charts.group(1)) == len(html.CDF_METRICS) + 6  # CDFs + sweep curves
    assert dom.count("<polyline") >= 2 * len(html.CDF_METRICS)
    for text in ("TTFT CDF", "Request throughput", "Goodput", "Percentiles", "Client self-check", "sim-B"):
        assert text in dom

    shot = tmp_path / "report.png"
    _, stderr = _browse(chromium, page, tmp_path, f"--screenshot={shot}")
    assert shot.exists()
    assert shot.stat().st_size > 50_000  # a blank page is a few kB
    if os.environ.get("BENCH_SCREENSHOT"):
        shutil.copy(shot, os.environ["BENCH_SCREENSHOT"])
