"""CLI parsing into a BenchSpec, spec validation, compare output, and the package's public surface."""

from __future__ import annotations

import argparse

import pytest

import loadtest
from gateway.cli import build_parser
from loadtest.bench import BenchResult
from loadtest.cli import parse_exclusion, parse_length, spec_from_args
from loadtest.compare import render
from loadtest.config import BenchSpec, Exclusion, LengthDist, LoadShape, Target
from loadtest.summary import PointSummary


def _parse(*argv: str) -> BenchSpec:
    return spec_from_args(build_parser().parse_args(["bench", *argv]))


def test_sweep_of_rates_with_two_targets() -> None:
    spec = _parse("--target", "http://a:1/v1,label=A", "--target", "http://b:2/v1,model=other,api-key=k",
                  "--model", "m", "--rate", "1,2.5", "--arrival", "gamma", "--burstiness", "0.5", "-n", "100",
                  "--warmup", "5s", "--cooldown", "3", "--slo-ttft-ms", "200", "--output-len", "normal:64:8")
    assert [t.name for t in spec.targets] == ["A", "other@b:2"]
    assert spec.targets[1].api_key == "k"
    assert [ld.rate for ld in spec.loads] == [1.0, 2.5]
    assert spec.loads[0].burstiness == 0.5
    assert spec.warmup == Exclusion(seconds=5.0)
    assert spec.cooldown == Exclusion(requests=3)
    assert spec.slo.ttft_s == pytest.approx(0.2)
    assert spec.dataset.output_len == LengthDist(kind="normal", mean=64, spread=8.0)


def test_argument_errors() -> None:
    with pytest.raises(argparse.ArgumentTypeError, match="either --concurrency"):
        _parse("--target", "http://a/v1", "--model", "m", "-n", "1")
    with pytest.raises(argparse.ArgumentTypeError, match="no model"):
        _parse("--target", "http://a/v1", "-c", "1", "-n", "1")
    with pytest.raises(argparse.ArgumentTypeError):
        parse_length("zipf:1:2")
    with pytest.raises(argparse.ArgumentTypeError):
        parse_exclusion("abc")
    assert parse_length("none") is None


def test_spec_validates_when_built() -> None:
    t = Target(base_url="http://a/v1", model="m")
    with pytest.raises(ValueError, match="labels must differ"):
        BenchSpec(targets=(t, t), loads=(LoadShape(concurrency=1),), num_requests=1)
    with pytest.raises(ValueError, match="either a concurrency"):
        BenchSpec(targets=(t,), loads=(LoadShape(),), num_requests=1)
    with pytest.raises(ValueError, match="bound the run"):
        BenchSpec(targets=(t,), loads=(LoadShape(concurrency=1),))


def _point(target: str, ttft: float) -> PointSummary:
    from loadtest.stats import describe

    return PointSummary(target=target, point=0, load=LoadShape(concurrency=1), x_name="concurrency", x=1.0,
                        rounds=1, requests=1, completed=1, failed=0, incomplete=0, errors={}, window_s=1.0,
                        request_throughput=1.0, output_token_throughput=10.0, total_token_throughput=20.0,
                        achieved_concurrency=1.0, goodput=1.0, slo_attainment=1.0,
                        stats={"ttft": describe([ttft])}, token_sources={}, cdf={})


def test_compare_pairs_single_target_runs() -> None:
    spec = BenchSpec(targets=(Target(base_url="http://a/v1", model="m"),), loads=(LoadShape(concurrency=1),),
                     num_requests=1)
    a = BenchResult(created="x", spec=spec, points=[_point("vllm", 0.100)])
    b = BenchResult(created="y", spec=spec, points=[_point("sglang", 0.080)])
    out = render(a, b)
    assert "vllm vs sglang at concurrency=1" in out
    line = next(ln for ln in out.splitlines() if "TTFT p50 ms" in ln)
    assert "-20.0%" in line


def test_public_api() -> None:
    assert sorted(loadtest.__all__) == sorted(
        ["SLO", "BenchResult", "BenchSpec", "DatasetSpec", "Exclusion", "LengthDist", "LoadShape", "PairedDiff",
         "PairedStat", "PointSummary",
         "RequestMetrics", "RequestRecord", "SelfCheck", "Target", "derive", "run_bench"])
    for name in loadtest.__all__:
        assert hasattr(loadtest, name)


def test_interleave_flag() -> None:
    spec = _parse("--target", "http://a:1/v1,label=A", "--target", "http://b:2/v1,label=B", "--model", "m",
                  "-c", "1", "-d", "30", "--interleave")
    assert spec.interleave
    with pytest.raises(argparse.ArgumentTypeError, match="closed loop"):
        _parse("--target", "http://a:1/v1", "--model", "m", "-r", "1", "-n", "5", "--interleave")
