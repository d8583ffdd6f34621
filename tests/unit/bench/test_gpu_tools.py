"""The GPU bake-off's tools (bench/gpu): the OTLP sink, the trace renderer and the tables, on real data paths."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import msgspec
import pytest
from opentelemetry import trace
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor

from bench.gpu import render_trace, tables
from tests.support.procs import free_port

ROOT = Path(__file__).resolve().parents[3]


def _export_trace(endpoint: str) -> str:
    """Three nested spans of two services, sent by the real OTLP/HTTP exporter; returns the trace id."""
    ids = []
    for service in ("lockgate", "vllm"):
        provider = TracerProvider(resource=Resource.create({"service.name": service}))
        provider.add_span_processor(SimpleSpanProcessor(OTLPSpanExporter(endpoint=f"{endpoint}/v1/traces")))
        ids.append(provider)
    gateway, engine = (p.get_tracer("t") for p in ids)
    with gateway.start_as_current_span("chat m", kind=trace.SpanKind.SERVER) as root:
        root.set_attribute("lockgate.backend", "vllm-a")
        with gateway.start_as_current_span("POST /v1/completions", kind=trace.SpanKind.CLIENT):
            time.sleep(0.002)
            with engine.start_as_current_span("llm_request", kind=trace.SpanKind.SERVER) as span:
                span.set_attribute("gen_ai.usage.completion_tokens", 32)
                time.sleep(0.002)
    for p in ids:
        p.shutdown()
    return format(root.get_span_context().trace_id, "032x")


def test_sink_records_spans_that_the_renderer_draws_as_one_tree(tmp_path: Path) -> None:
    port = free_port()
    spans = tmp_path / "spans.jsonl"
    sink = subprocess.Popen([sys.executable, str(ROOT / "bench/gpu/otlp_sink.py"), "--port", str(port),
                             "--out", str(spans)], cwd=ROOT)
    try:
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            try:
                httpx.post(f"http://127.0.0.1:{port}/v1/logs", content=b"", timeout=1)
                break
            except httpx.HTTPError:
                time.sleep(0.1)
        trace_id = _export_trace(f"http://127.0.0.1:{port}")
    finally:
        sink.terminate()
        sink.wait(10)
    rows = [json.loads(line) for line in spans.read_text().splitlines()]
    assert {r["name"] for r in rows} == {"chat m", "POST /v1/completions", "llm_request"}
    assert all(r["end_ns"] > r["start_ns"] > 0 for r in rows)
    md, svg = tmp_path / "t.md", tmp_path / "t.svg"
    subprocess.run([sys.executable, str(ROOT / "bench/gpu/render_trace.py"), str(spans), "--trace-id", trace_id,
                    "--md", str(md), "--svg", str(svg)], check=True, cwd=ROOT)
    lines = md.read_text().splitlines()[2:]
    # Depth-first: the engine's span sits under the worker's CLIENT span, under the gateway's SERVER span.
    assert [line.split("|")[1].strip().replace("&nbsp;", "") for line in lines] == [
        "chat m", "POST /v1/completions", "llm_request"]
    assert lines[2].count("&nbsp;") == 8
    assert "`gen_ai.usage.completion_tokens`=32" in lines[2]
    assert svg.read_text().count("<rect") == 3


def test_renderer_treats_a_span_whose_parent_is_missing_as_a_root() -> None:
    spans = [{"span_id": "b", "parent_span_id": "gone", "start_ns": 5},
             {"span_id": "a", "parent_span_id": "", "start_ns": 1},
             {"span_id": "c", "parent_span_id": "a", "start_ns": 2}]
    assert [(d, s["span_id"]) for d, s in render_trace.ordered(spans)] == [(0, "a"), (1, "c"), (0, "b")]


def _point(target: str, x: float, tok_s: float, ttft_p50: float) -> dict[str, object]:
    stat = {"p50": ttft_p50, "p90": ttft_p50, "p99": ttft_p50}
    return {"target": target, "x": x, "x_name": "concurrency", "completed": 10, "requests": 10,
            "request_throughput": tok_s / 256, "output_token_throughput": tok_s, "goodput": 1.0,
            "stats": {"ttft": stat, "tpot": stat, "itl": stat, "e2e": stat}}


def test_tables_compare_each_target_with_the_baseline_at_the_same_point() -> None:
    points = [_point("direct", 32, 1000, 0.080), _point("gw", 32, 950, 0.0825),
              _point("direct", 100, 2000, 0.2), _point("gw", 100, 1000, 0.3)]
    out = tables.tables(points, "direct").splitlines()
    ratios = [line for line in out if line.startswith("| gw |") and "%" in line]
    assert ratios[0].split("|")[3].strip() == "95.0%"
    assert ratios[0].split("|")[4].strip() == "+2.5"
    assert ratios[1].split("|")[3].strip() == "50.0%"
    req_per_hour = 1000 / 256 * 3600
    assert f"{req_per_hour:,.0f}" in out[2]
    assert pytest.approx(float(ratios[1].split("|")[5].strip().rstrip("x"))) == round(
        1000 / 256 * 3600 / tables.REFERENCE_REQ_PER_HOUR, 1)


def test_engine_probe_reads_each_lockgate_header_by_its_exact_name() -> None:
    from bench.gpu.engine_probe import client_figures
    from loadtest.record import RequestRecord

    def rec(i: int, headers: dict[str, str]) -> RequestRecord:
        return RequestRecord(target="lockgate-vllm", point=0, round=0, index=i, prompt_id=str(i), t_sched=0.0,
                             t_send=float(i), t_first=i + 0.1, t_last=i + 0.3, t_end=i + 0.3,
                             chunk_offsets=[0.1, 0.2, 0.3], chunk_tokens=[1, 1, 1], n_out=3, outcome="ok",
                             status=200, gateway_headers=headers)

    records = [rec(0, {"x-lockgate-queue-ms": "2", "x-lockgate-ttft-ms": "100", "x-lockgate-engine-ttft-ms": "80",
                       "x-lockgate-relay-ms": "4"}),
               rec(1, {"x-lockgate-queue-ms": "4", "x-lockgate-ttft-ms": "120", "x-lockgate-engine-ttft-ms": "90",
                       "x-lockgate-relay-ms": "6", "x-lockgate-backend": "vllm-a"})]
    figures = client_figures(records)
    # engine-ttft-ms also ends in "ttft-ms": matched by suffix it would have pulled the gateway's TTFT down.
    assert figures["gateway_ttft"] == pytest.approx(0.110)
    assert figures["worker_engine_ttft"] == pytest.approx(0.085)
    assert figures["gateway_relay"] == pytest.approx(0.005)
    assert figures["gateway_queue"] == pytest.approx(0.003)
    assert client_figures([rec(0, {})])["worker_engine_ttft"] is None


def test_engine_table_splits_lockgates_first_token_when_the_headers_were_recorded(tmp_path: Path) -> None:
    from bench.gpu import engine_table

    measured = ROOT / "docs/gpu-bakeoff/cpu-pinning/engine-pinned-1-engine.json"
    data = json.loads(measured.read_text())
    before = engine_table.render(engine_table.groups([measured]), "vllm-direct")
    assert "engine as the worker saw it" not in before  # runs from before the headers existed: no split table
    for run in data["runs"]:
        if run["target"] == "lockgate-vllm":
            run["client"].update(worker_engine_ttft=0.050, gateway_relay=0.004)
    path = tmp_path / "engine.json"
    path.write_text(json.dumps(data))
    table = engine_table.render(engine_table.groups([path]), "vllm-direct")
    rows = [line for line in table.split("engine as the worker saw it", 1)[1].splitlines() if "lockgate-vllm" in line]
    assert rows, table
    assert all(line.rstrip(" |").endswith("4.0") for line in rows[:4])
    assert all("| 50.0 |" in line for line in rows[:4])


def test_engine_probe_counts_the_tcp_connections_the_host_opened_during_a_run(tmp_path: Path) -> None:
    # Whether a dispatch opens engine connections mid-run (the tenth lease's c=256 tail): the host's ActiveOpens.
    import socket

    from bench.gpu import engine_probe, engine_table

    snmp = ("Tcp: RtoAlgorithm RtoMin RtoMax MaxConn ActiveOpens PassiveOpens CurrEstab\n"
            "Tcp: 1 200 120000 -1 599 373 2\n")
    assert engine_probe.tcp_opens(snmp) == 599
    assert engine_probe.tcp_opens("Udp: InDatagrams\nUdp: 4\n") == 0
    listener = socket.create_server(("127.0.0.1", 0))
    before = engine_probe.snapshot("http://127.0.0.1:9/metrics")  # nothing listens there: no engine figures
    opened = [socket.create_connection(listener.getsockname()) for _ in range(3)]
    after = engine_probe.snapshot("http://127.0.0.1:9/metrics")
    for c in opened:
        c.close()
    listener.close()
    row = engine_probe.phase_row(before, after, [])
    assert row["tcp_opens"] >= 3  # others on this machine may open some too, never fewer
    assert row["tcp_opens"] < 3 + 1000

    measured = ROOT / "docs/gpu-bakeoff/cpu-pinning/engine-pinned-1-engine.json"
    data = json.loads(measured.read_text())
    for run in data["runs"]:
        if run["target"] == "lockgate-vllm":
            run["tcp_opens"] = 100 + 10 * run["round"]  # the rounds' mean: 105
    path = tmp_path / "engine.json"
    path.write_text(json.dumps(data))
    table = engine_table.render(engine_table.groups([path]), "vllm-direct")
    cpu_rows = table.split("TCP connections opened per run", 1)[1].split("\n\n", 1)[0].splitlines()
    assert len([line for line in cpu_rows if "| lockgate-vllm |" in line]) == 4
    assert all(line.endswith("| 105 |") for line in cpu_rows if "| lockgate-vllm |" in line)
    assert all(line.endswith("| - |") for line in cpu_rows if "| vllm-direct |" in line)  # files from before


def test_engine_probe_keeps_the_step_size_buckets_and_the_table_shows_them_with_each_api_server(
        tmp_path: Path) -> None:
    # The eleventh lease's c=32 question: how vLLM split its running requests into steps for each target, and how
    # evenly each target's connections spread over vLLM's API servers.
    from bench.gpu import engine_probe, engine_table

    def metrics(counts: list[int], steps_sum: float) -> str:
        bounds = ["1.0", "8.0", "16.0", "32.0", "64.0", "128.0", "+Inf"]
        lines = [f'vllm:iteration_tokens_total_bucket{{engine="0",le="{b}",model_name="m"}} {c}'
                 for b, c in zip(bounds, counts, strict=True)]
        lines += [f'vllm:iteration_tokens_total_sum{{engine="0",model_name="m"}} {steps_sum}',
                  f'vllm:iteration_tokens_total_count{{engine="0",model_name="m"}} {counts[-1]}',
                  'vllm:request_queue_time_seconds_bucket{le="0.5"} 3']
        return "\n".join(lines) + "\n"

    before = engine_probe.parse_metrics(metrics([0, 10, 10, 20, 20, 20, 20], 300))
    after = engine_probe.parse_metrics(metrics([0, 60, 70, 120, 121, 121, 121], 2000))
    assert before["vllm:iteration_tokens_total_bucket|le=8.0"] == 10
    assert not any("request_queue_time_seconds_bucket" in k for k in after)  # only the step sizes' buckets
    snap = {"t": 0.0, "procs": {}, "cpus": [], "client_cpu": 0.0, "tcp_opens": 0}
    row = engine_probe.phase_row({**snap, "engine": before}, {**snap, "t": 1.0, "engine": after}, [])
    assert row["engine"]["vllm:iteration_tokens_total_bucket|le=8.0"] == 50
    assert not any(k.startswith("vllm:iteration_tokens_total_bucket") for k in row["engine_gauges_after"])

    measured = ROOT / "docs/gpu-bakeoff/cpu-pinning/engine-pinned-1-engine.json"
    data = json.loads(measured.read_text())
    for run in data["runs"]:
        if run["target"] == "vllm-direct":
            run["engine"].update({k: v for k, v in row["engine"].items() if "bucket" in k})
            run["roles"]["vllm-api"]["threads"] = [
                {"thread": "VLLM::APIServer 889/889", "cpu": 0.6, "delay": 0.0},
                {"thread": "VLLM::APIServer 889/2427", "cpu": 0.9, "delay": 0.0},  # a helper thread: not a server
                {"thread": "VLLM::APIServer 890/890", "cpu": 0.2, "delay": 0.0}]
    path = tmp_path / "engine.json"
    path.write_text(json.dumps(data))
    gs = engine_table.groups([path])
    direct = [g for g in gs if g["target"] == "vllm-direct"]
    # 101 steps: 50 of <= 8 tokens, 10 of 9-16, 40 of 17-32, 1 of 33-128, none larger.
    assert {g["vllm_step_mix"] for g in direct} == {"50/10/40/1/0"}
    assert {g["api_each"] for g in direct} == {"0.60 / 0.20"}
    lockgate = [g for g in gs if g["target"] == "lockgate-vllm"]
    assert {g["vllm_step_mix"] for g in lockgate} == {None}  # runs recorded before the buckets were kept
    table = engine_table.render(gs, "vllm-direct")
    assert "| 50/10/40/1/0 |" in table
    assert "| 0.60 / 0.20 |" in table


def test_engine_table_pairs_each_round_with_the_baselines_same_round(tmp_path: Path,
                                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    from bench.gpu import engine_table

    measured = ROOT / "docs/gpu-bakeoff/cpu-pinning/engine-pinned-1-engine.json"
    data = json.loads(measured.read_text())
    runs = [r for r in data["runs"] if r["x"] == 100.0]
    for r in runs:  # direct: 1000 then 1200 tokens/s; lockgate: 900 then 1260
        tok_s = {("vllm-direct", 0): 1000, ("vllm-direct", 1): 1200, ("lockgate-vllm", 0): 900,
                 ("lockgate-vllm", 1): 1260}[(r["target"], r["round"])]
        r["client"].update(n_out=tok_s * 10, span_s=10.0)
    path = tmp_path / "engine.json"
    path.write_text(json.dumps({**data, "runs": runs}))
    gs = engine_table.groups([path])
    table = engine_table.render(gs, "vllm-direct")
    row = next(line for line in table.splitlines() if "lockgate-vllm" in line and "90.0%, 105.0%" in line)
    assert "| 20.0% |" in row, row  # the baseline's own rounds differ by 1200/1000 - 1
    assert "| 97.5% (2.2% to 192.8%) |" in row, row  # mean of 90% and 105%, t(1 df) = 12.706
    csv_path = tmp_path / "t.csv"
    monkeypatch.setattr(sys, "argv", ["engine_table", str(path), "--csv", str(csv_path)])
    assert engine_table.main() == 0
    header = csv_path.read_text().splitlines()[0].split(",")
    assert "client_tok_s" in header
    assert not [k for k in header if k.startswith("_")]


def test_engine_table_pools_the_rounds_of_one_folders_files(tmp_path: Path) -> None:
    from bench.gpu import engine_table

    measured = ROOT / "docs/gpu-bakeoff/cpu-pinning/engine-pinned-1-engine.json"
    data = json.loads(measured.read_text())
    runs = [r for r in data["runs"] if r["x"] == 100.0]
    # Two files of one setup, each numbering its rounds 0 and 1: four pairs, kept 96%, 98%, 100%, 102%.
    kept = {("a", 0): 0.96, ("a", 1): 0.98, ("b", 0): 1.00, ("b", 1): 1.02}
    paths = []
    for name in ("a", "b"):
        copy = json.loads(json.dumps(runs))
        for r in copy:
            base = 1000 + 100 * r["round"]
            tok_s = base if r["target"] == "vllm-direct" else base * kept[(name, r["round"])]
            r["client"].update(n_out=tok_s * 10, span_s=10.0)
        path = tmp_path / "setup" / f"{name}-engine.json"
        path.parent.mkdir(exist_ok=True)
        path.write_text(json.dumps({**data, "runs": copy}))
        paths.append(path)
    gs = engine_table.groups(paths, by_dir=True)
    assert {g["condition"] for g in gs} == {"setup"}
    assert [g["runs"] for g in gs if g["target"] == "lockgate-vllm"] == [4]
    row = next(line for line in engine_table.render(gs, "vllm-direct").splitlines()
               if "lockgate-vllm" in line and "96.0%" in line)
    assert "96.0%, 98.0%, 100.0%, 102.0%" in row, row
    # sd 2.58 points, t(3 df) = 3.182: half-width 4.1 points
    assert "| 99.0% (94.9% to 103.1%) |" in row, row
    # vLLM's ITL, paired the same way: the measured runs' own, equal in both files, so each pair repeats twice
    itl = engine_table.round_ratios(next(g for g in gs if g["target"] == "lockgate-vllm"),
                                    next(g for g in gs if g["target"] == "vllm-direct"), "_round_itl")
    assert len(itl) == 4
    assert itl[:2] == itl[2:]
    assert f"| {engine_table.mean_ci(itl)} |" in row, row
    assert engine_table.mean_ci([1.0]) == "-"


def test_pin_tells_the_workers_apart_and_stops_only_the_backends_asked(tmp_path: Path,
                                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    # Stand-ins with a worker's command line (pin.py knows lockgate's processes by it); run.sh's `workers` and
    # `sglang-start` stop vLLM's workers this way and leave the others running.
    from bench.gpu import pin

    monkeypatch.setattr(pin, "W", tmp_path)
    sleeper = [sys.executable, "-c", "import time; time.sleep(60)"]
    procs = {backend: subprocess.Popen([*sleeper, "gateway.cli", "worker", "--config", f"{tmp_path}/lockgate.toml",
                                        "--backend", backend])
             for backend in ("vllm-a", "vllm-a-other", "sglang-a", "hf-a")}
    try:
        deadline = time.monotonic() + 5
        while len(roles := {pid: r for pid, r in pin.roles().items() if r.startswith("worker")}) < 4:
            assert time.monotonic() < deadline, roles
            time.sleep(0.05)
        assert {b: roles[p.pid] for b, p in procs.items()} == {
            "vllm-a": "worker-vllm", "vllm-a-other": "worker-vllm", "sglang-a": "worker-sglang", "hf-a": "worker-hf"}
        assert pin.stop_workers(["vllm-a", "sglang-a"], timeout_s=10) == 0
        assert procs["vllm-a"].poll() is not None
        assert procs["sglang-a"].poll() is not None
        assert procs["vllm-a-other"].poll() is None  # "--backend vllm-a" is not a prefix match
        assert procs["hf-a"].poll() is None
    finally:
        for p in procs.values():
            p.kill()
            p.wait()


def test_pin_puts_the_shadow_replica_with_lockgate_not_with_vllm(tmp_path: Path,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    # run.sh shadow: the replica on :8200 stands in for an engine but must load lockgate's CPUs, not vLLM's.
    from bench.gpu import pin

    monkeypatch.setattr(pin, "W", tmp_path)
    sleeper = [sys.executable, "-c", "import time; time.sleep(60)"]
    procs = {port: subprocess.Popen([*sleeper, "gateway.cli", "sim-server", "--protocol", "vllm", "--port", port])
             for port in ("8200", "82000")}
    try:
        deadline = time.monotonic() + 5
        ours = {p.pid for p in procs.values()}  # a rehearsal's replica may be running on this machine too
        while not (found := {pid for pid, r in pin.roles().items() if r == "shadow-engine" and pid in ours}):
            assert time.monotonic() < deadline
            time.sleep(0.05)
        assert found == {procs["8200"].pid}  # ":82000" is another port, not the shadow's
    finally:
        for p in procs.values():
            p.kill()
            p.wait()


@pytest.mark.parametrize("pinned", [False, True])
def test_burn_runs_the_command_beside_busy_loops_and_stops_them(tmp_path: Path, pinned: bool) -> None:
    # run.sh burn: direct vLLM with lockgate's CPUs kept busy; pinned, loops and command keep to the REST set.
    from bench.gpu import burn

    if pinned:
        (tmp_path / "pin.json").write_text(json.dumps({"mode": "pinned", "rest_cpus": "0", "vllm_cpus": "1"}))
    cmd = "import os, sys, time; time.sleep(1); print(sorted(os.sched_getaffinity(0))); sys.exit(3)"
    out = subprocess.run([sys.executable, "-m", "bench.gpu.burn", "1", "--", sys.executable, "-c", cmd],
                         cwd=ROOT, env={**os.environ, "W": str(tmp_path)}, capture_output=True, text=True,
                         timeout=60)
    assert out.returncode == 3, out.stderr
    affinity, report = out.stdout.strip().splitlines()
    if pinned:
        assert affinity == "[0]"
        assert report.startswith("burn: 1 loops on CPUs 0 used ")
    cores = float(report.split(" used ")[1].split()[0])
    assert cores > 0.1  # the loop spun (it shares a noisy 2-core machine with the suite)
    spinning = [p for p in Path("/proc").iterdir() if p.name.isdigit() and burn.SPIN.encode()[:40] in
                _cmdline(p)]
    assert spinning == []


def test_burn_poll_keeps_one_idle_class_loop_on_each_cpu_of_the_set(tmp_path: Path) -> None:
    # --poll: no vCPU of lockgate's set halts while CMD runs, and the loops never take CPU from it (SCHED_IDLE).
    from bench.gpu import burn

    cpus = sorted(os.sched_getaffinity(0))
    (tmp_path / "pin.json").write_text(json.dumps({"mode": "pinned", "rest_cpus": ",".join(map(str, cpus)),
                                                   "vllm_cpus": str(cpus[0])}))
    marker = b"os.sched_setscheduler(0, os.SCHED_IDLE"
    assert marker.decode() in burn.POLL
    cmd = ("import os, sys, time; from pathlib import Path; time.sleep(1)\n"
           "me = {os.getpid(), os.getppid()}  # their command lines hold this one's text\n"
           "loops = [int(p.name) for p in Path('/proc').iterdir() if p.name.isdigit() and int(p.name) not in me "
           f"and {marker!r} in (p / 'cmdline').read_bytes()]\n"
           "print(sorted((sorted(os.sched_getaffinity(pid)), os.sched_getscheduler(pid) == os.SCHED_IDLE) "
           "for pid in loops))\n"
           "t = time.process_time(); end = time.monotonic() + 0.5\n"
           "while time.monotonic() < end: pass\n"
           "print(round((time.process_time() - t) / 0.5, 2))")
    out = subprocess.run([sys.executable, "-m", "bench.gpu.burn", "--poll", "--", sys.executable, "-c", cmd],
                         cwd=ROOT, env={**os.environ, "W": str(tmp_path)}, capture_output=True, text=True,
                         timeout=60)
    assert out.returncode == 0, out.stderr
    loops, share, report = out.stdout.strip().splitlines()
    assert loops == str([([c], True) for c in cpus])
    assert float(share) > 0.8  # a normal-class process runs as if the loops were not there
    assert report.startswith(f"burn: {len(cpus)} loops SCHED_IDLE (one per CPU) on CPUs ")
    assert [p for p in Path("/proc").iterdir() if p.name.isdigit() and marker in _cmdline(p)] == []


def _cmdline(proc: Path) -> bytes:
    try:
        return (proc / "cmdline").read_bytes()
    except OSError:
        return b""


def test_pin_counts_vllms_api_server_children_as_its_api_server(tmp_path: Path,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    # vllm serve --api-server-count 2: the root process only launches; children titled VLLM::APIServer_i serve HTTP
    # (the fourth lease's engine table showed the API server idle, its work under "other").
    from bench.gpu import pin

    monkeypatch.setattr(pin, "W", tmp_path)
    child = "import time; time.sleep(60)"
    # The titles come through the environment: in the launcher's own command line they would name it too.
    launcher = ("import os, subprocess, sys, time\n"
                f"kids = [subprocess.Popen([sys.executable, '-c', {child!r}, title]) for title in\n"
                "        os.environ['TITLES'].split()]\n"
                "time.sleep(60)")
    root = subprocess.Popen([sys.executable, "-c", launcher], start_new_session=True, env={
        **os.environ, "TITLES": "VLLM::APIServer_0 VLLM::APIServer_1 VLLM::EngineCore_DP0"})
    (tmp_path / "vllm.pid").write_text(str(root.pid))
    try:
        # Until the children have exec'd they carry the launcher's command line (and count as vllm-other): wait
        # for all four to be what they will stay, not merely present.
        expected = ["vllm-api", "vllm-api", "vllm-engine", "vllm-other"]
        deadline = time.monotonic() + 10
        while sorted((roles := {pid: r for pid, r in pin.roles().items() if r.startswith("vllm")}).values()) \
                != expected:
            assert time.monotonic() < deadline, roles
            time.sleep(0.05)
        assert roles[root.pid] == "vllm-other"
    finally:
        os.killpg(root.pid, signal.SIGKILL)
        root.wait()


def test_the_gpu_config_validates_and_names_every_vllm_backend_that_run_sh_stops() -> None:
    # run.sh stops env.sh's VLLM_BACKENDS (the backends at vLLM's port) before it starts other workers or another
    # engine; one the toml adds and env.sh forgets would leave workers running into the next measurement.
    from gateway.config.loader import load_config

    cfg = load_config(ROOT / "bench/gpu/lockgate-gpu.toml")
    env = (ROOT / "bench/gpu/env.sh").read_text()
    listed = env.split("VLLM_BACKENDS=(", 1)[1].split(")", 1)[0].split()
    at_vllm = {name for name, b in cfg.backends.items() if b.kind == "vllm" and b.options["url"].endswith(":8100")}
    assert set(listed) == at_vllm
    assert cfg.backends["vllm-anyio"].options["network"] == "anyio"
    assert "network" not in cfg.backends["vllm-a"].options  # the baseline it is compared with runs the default
    assert cfg.backends["vllm-anyio"].options["client"] == "httpx"  # network applies to httpx's transport only
    assert cfg.backends["vllm-httpx"].options["client"] == "httpx"
    assert "client" not in cfg.backends["vllm-a"].options  # the default: lean


def test_the_embedded_config_serves_the_same_vllm_backend_on_its_own_port() -> None:
    # setup.sh's BAKE_EMBEDDED: `lockgate serve` on 8001 beside the Redis gateways on 8000; compared with them in one
    # schedule, its backend must be vllm-a exactly, or the comparison measures the adapter's options, not dispatch.
    from gateway.config.loader import load_config

    redis_cfg = load_config(ROOT / "bench/gpu/lockgate-gpu.toml")
    cfg = load_config(ROOT / "bench/gpu/lockgate-embedded.toml")
    assert cfg.dispatch.kind == "embedded"
    assert cfg.server.port == 8001
    assert cfg.server.port != redis_cfg.server.port
    assert cfg.server.reuse_port  # BAKE_EMBEDDED=N processes share the port
    assert set(cfg.models) == {"qwen-vllm"}
    assert set(cfg.backends) == {"vllm-a"}  # no hf: serve builds every backend, and hf would load a model
    mine, theirs = cfg.backends["vllm-a"], redis_cfg.backends["vllm-a"]
    assert (mine.kind, mine.concurrency, mine.options) == (theirs.kind, theirs.concurrency, theirs.options)


def test_the_local_start_config_is_a_redis_fleet_of_its_own_on_its_own_port() -> None:
    # setup.sh's BAKE_COLOCATED: `lockgate serve` with Redis dispatch and dispatch.local on 8002. Its workers must
    # not take port 8000's jobs (nor 8000's workers its jobs): another key prefix; and the same vllm-a exactly.
    from gateway.config.loader import load_config

    redis_cfg = load_config(ROOT / "bench/gpu/lockgate-gpu.toml")
    cfg = load_config(ROOT / "bench/gpu/lockgate-local.toml")
    assert (cfg.dispatch.kind, cfg.dispatch.local) == ("redis", True)
    assert cfg.dispatch.redis_url == redis_cfg.dispatch.redis_url
    assert cfg.dispatch.key_prefix != redis_cfg.dispatch.key_prefix
    assert cfg.dispatch.pack > 0  # a local start needs slots beyond what the worker's blocked take asked for
    assert cfg.server.port == 8002
    assert cfg.server.reuse_port
    assert set(cfg.models) == {"qwen-vllm"}
    assert set(cfg.backends) == {"vllm-a"}
    mine, theirs = cfg.backends["vllm-a"], redis_cfg.backends["vllm-a"]
    assert (mine.kind, mine.concurrency, mine.options) == (theirs.kind, theirs.concurrency, theirs.options)


@pytest.mark.parametrize(("config", "role"), [("lockgate-embedded.toml", "embedded"), ("lockgate-local.toml", "local")])
def test_pin_counts_the_serve_processes_as_lockgates(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, config: str,
                                                     role: str) -> None:
    from bench.gpu import pin

    monkeypatch.setattr(pin, "W", tmp_path)
    proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)", "gateway.cli", "serve", "--config",
                             f"{tmp_path}/{config}"])
    try:
        deadline = time.monotonic() + 5
        while pin.roles().get(proc.pid) is None:
            assert time.monotonic() < deadline
            time.sleep(0.05)
        assert pin.roles()[proc.pid] == role  # not vllm-*: pinned with lockgate, on the rest set
    finally:
        proc.kill()
        proc.wait()


def test_workers_started_with_another_wake_run_that_config_and_pin_still_knows_them(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # run.sh's `workers` with BAKE_WAKE=warm: the config copy differs from setup.sh's in dispatch.wake alone, and
    # pin.py must still count its workers as lockgate's (to pin and to stop them), as it counts the gateways.
    from bench.gpu import pin
    from gateway.config.loader import load_config

    (tmp_path / "lockgate.toml").write_text((ROOT / "bench/gpu/lockgate-gpu.toml").read_text())
    out = subprocess.run(["bash", "-c", "source bench/gpu/env.sh && wake_config"], cwd=ROOT, check=True,
                         capture_output=True, text=True,
                         env={**os.environ, "W": str(tmp_path), "BAKE_LOCAL": "1", "BAKE_WAKE": "warm"})
    warm = Path(out.stdout.strip())
    assert warm == tmp_path / "lockgate-wake-warm.toml"
    base, other = load_config(tmp_path / "lockgate.toml"), load_config(warm)
    assert (base.dispatch.wake, other.dispatch.wake) == ("fifo", "warm")
    assert msgspec.structs.replace(other, dispatch=base.dispatch) == base
    # BAKE_COALESCE_MS: the workers' coalescing window, alone or with BAKE_WAKE, in a copy of its own.
    # BAKE_PACK: dispatch.pack (0: off, as before packing).
    for env, name, want in (({"BAKE_COALESCE_MS": "3"}, "lockgate-wake-default-c3.toml", ("fifo", 3.0, 16)),
                            ({"BAKE_WAKE": "warm", "BAKE_COALESCE_MS": "2.5"}, "lockgate-wake-warm-c2.5.toml",
                             ("warm", 2.5, 16)),
                            ({"BAKE_PACK": "0"}, "lockgate-wake-default-p0.toml", ("fifo", 1.0, 0))):
        out = subprocess.run(["bash", "-c", "source bench/gpu/env.sh && wake_config"], cwd=ROOT, check=True,
                             capture_output=True, text=True,
                             env={**os.environ, "W": str(tmp_path), "BAKE_LOCAL": "1", **env})
        assert Path(out.stdout.strip()) == tmp_path / name
        variant = load_config(tmp_path / name)
        assert (variant.dispatch.wake, variant.dispatch.coalesce_ms, variant.dispatch.pack) == want
        assert (base.dispatch.coalesce_ms, base.dispatch.pack) != want[1:]
        assert msgspec.structs.replace(variant, dispatch=base.dispatch) == base
    monkeypatch.setattr(pin, "W", tmp_path)
    sleeper = [sys.executable, "-c", "import time; time.sleep(60)"]
    worker = subprocess.Popen([*sleeper, "gateway.cli", "worker", "--config", str(warm), "--backend", "vllm-a"])
    gateway = subprocess.Popen([*sleeper, "gateway.cli", "gateway", "--config", f"{tmp_path}/lockgate.toml"])
    try:
        deadline = time.monotonic() + 5
        while {pin.roles().get(p.pid) for p in (worker, gateway)} != {"worker-vllm", "gateway"}:
            assert time.monotonic() < deadline, pin.roles()
            time.sleep(0.05)
        assert pin.stop_gateways(timeout_s=10) == 0
        assert gateway.poll() is not None
        assert worker.poll() is None
    finally:
        for p in (worker, gateway):
            p.kill()
            p.wait()


def _wheel(path: Path, blob: bytes) -> dict[str, bytes]:
    """A minimal installable wheel whose library deflates badly and xz's well (a block repeated past deflate's
    32 KiB window, as kernels for several GPU architectures repeat in one library)."""
    import base64
    import hashlib
    import zipfile

    files = {"lockgatedemo/__init__.py": b"VALUE = 1\n", "lockgatedemo/lib.so": blob,
             "lockgatedemo-1.0.dist-info/METADATA": b"Metadata-Version: 2.1\nName: lockgatedemo\nVersion: 1.0\n",
             "lockgatedemo-1.0.dist-info/WHEEL": b"Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: true\n"
                                                b"Tag: py3-none-any\n"}
    record = "".join(f"{n},sha256={base64.urlsafe_b64encode(hashlib.sha256(d).digest()).rstrip(b'=').decode()},"
                     f"{len(d)}\n" for n, d in files.items()) + "lockgatedemo-1.0.dist-info/RECORD,,\n"
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as z:
        for n, d in files.items():
            info = zipfile.ZipInfo(n, date_time=(2026, 12, 1, 0, 0, 0))
            info.external_attr = (0o100755 if n.endswith(".so") else 0o100644) << 16
            z.writestr(info, d, zipfile.ZIP_DEFLATED)
        z.writestr("lockgatedemo-1.0.dist-info/RECORD", record)
    return files


def test_a_wheel_packed_as_xz_and_split_installs_the_same_files(tmp_path: Path) -> None:
    # stage.sh's path for a large wheel, then env.sh's install_wheels on the machine: xz'd, split into parts,
    # joined, unpacked and installed by pip; the files and the library's executable bit arrive as they left.
    from bench.gpu import repack

    carried = tmp_path / "st"
    carried.mkdir()
    wheel = carried / "lockgatedemo-1.0-py3-none-any.whl"
    files = _wheel(wheel, os.urandom(1 << 20) * 6)
    deflated = wheel.stat().st_size
    packed = repack.pack(wheel)
    assert not wheel.exists()
    assert packed.stat().st_size < deflated / 3  # xz finds the repeats deflate cannot
    subprocess.run(["split", "-b", str(packed.stat().st_size // 2 + 1), "-d", str(packed), f"{packed}.part."],
                   check=True)
    packed.unlink()
    target = tmp_path / "site"
    subprocess.run(["bash", "-c", 'source bench/gpu/env.sh && install_wheels "$0" "$1"', str(carried),
                    str(target)], cwd=ROOT, check=True,
                   env={**os.environ, "ROOT": str(ROOT), "BAKE_LOCAL": "1", "PY": sys.executable})
    for name, data in files.items():
        if not name.endswith("METADATA"):
            assert (target / name).read_bytes() == data, name
    assert os.access(target / "lockgatedemo/lib.so", os.X_OK)
    assert (target / ".installed").exists()
    assert not list(carried.glob("*.xz*")), "the parts and the xz are consumed"


def test_repack_leaves_small_wheels_as_they_are(tmp_path: Path) -> None:
    wheel = tmp_path / "lockgatedemo-1.0-py3-none-any.whl"
    _wheel(wheel, b"x" * 1000)
    out = subprocess.run([sys.executable, str(ROOT / "bench/gpu/repack.py"), "pack", str(wheel)],
                         capture_output=True, text=True, check=True)
    assert wheel.exists()
    assert not list(tmp_path.glob("*.xz"))
    assert out.stdout == ""


def _record(index: int, ttft: float, queue_ms: float, *, target: str = "lockgate-vllm",
            connect_ms: float = 0.0) -> bytes:
    from loadtest.record import RequestRecord

    t_send = 100.0 + index
    offsets = [ttft + 0.005 * i for i in range(256)]
    offsets[-1] += 0.2  # one long stall near the end: max_gap_ms must find it
    headers = {"x-lockgate-queue-ms": f"{queue_ms:.2f}", "x-lockgate-engine-ttft-ms": "40.00",
               "x-lockgate-relay-ms": "2.00", "x-lockgate-ttft-ms": f"{queue_ms + 42:.2f}",
               "x-lockgate-engine-connect-ms": f"{connect_ms:.2f}",
               "x-lockgate-engine-head-ms": f"{5 + connect_ms:.2f}", "x-lockgate-backend": "vllm-a"}
    rec = RequestRecord(target=target, point=256, round=0, index=index, prompt_id=f"p{index}", t_sched=t_send,
                        t_send=t_send, t_first=t_send + ttft, t_last=t_send + offsets[-1],
                        t_end=t_send + offsets[-1] + 0.001, chunk_offsets=offsets, chunk_tokens=[1] * 256,
                        n_out=256, status=200, outcome="ok", gateway_headers=headers)
    return msgspec.json.encode(rec)


def test_slim_requests_keeps_one_small_row_and_finds_where_the_slow_first_tokens_waited(tmp_path: Path) -> None:
    from bench.gpu import slim_requests

    run = tmp_path / "engine" / "c256-r0"
    run.mkdir(parents=True)
    # 98 requests with 50 ms of first token (8 ms in the queue), 2 with 600 ms, of which 500 ms in the queue.
    lines = [_record(i, 0.050, 8.0) for i in range(98)] + \
        [_record(98 + i, 0.600, 508.0, connect_ms=3.0) for i in range(2)]
    (run / "requests.jsonl").write_bytes(b"\n".join(lines) + b"\n")
    summary = {"points": [{"target": "lockgate-vllm", "point": 256, "x_name": "concurrency", "x": 256.0,
                           "load": {"concurrency": 256, "rate": None}}]}
    (run / "summary.json").write_text(json.dumps(summary))
    out = tmp_path / "slim.jsonl.xz"
    assert slim_requests.main(["slim", str(tmp_path / "engine"), str(out)]) == 0
    rows = slim_requests.read(out)
    assert len(rows) == 100
    assert out.stat().st_size < (run / "requests.jsonl").stat().st_size / 20
    first = rows[0]
    assert first.run == "c256-r0"
    assert first.ttft_ms == pytest.approx(50.0)
    assert first.max_gap_ms == pytest.approx(205.0)
    assert [r.send_s for r in rows[:3]] == [100.0, 101.0, 102.0]  # the run clock's send times, for arrival patterns
    assert first.split == {"queue": 8.0, "engine-connect": 0.0, "engine-head": 5.0, "engine-ttft": 40.0,
                           "relay": 2.0, "ttft": 50.0}
    table = slim_requests.tail_table(rows, slo_ms=500, top=0.01)
    row = next(line for line in table if line.startswith("| lockgate-vllm"))
    cells = [c.strip() for c in row.strip("|").split("|")]
    assert cells[1] == "c=256"  # from summary.json: the requests carry only the point's index
    assert cells[3] == "50.0 / 600.0"  # p50 / p99 of client TTFT
    assert cells[4] == "> 500 ms, 2"
    assert cells[6] == "508.0 / 8.0"  # the queue holds the slow ones' wait
    assert cells[7] == "3.0 / 0.0"  # connecting: the slow ones opened a connection each, the others kept one
    assert cells[8] == "8.0 / 5.0"  # the engine's head
    assert cells[9] == "40.0 / 40.0"  # the engine leg does not hold the wait
    assert cells[-1] == "100% / 0%"  # on a new engine connection
    # No request over the SLO: the slowest share is called slow instead.
    for r in rows:  # rows slimmed without a summary.json: named by index, or by `tail --summary`
        r.load = ""
    assert "| lockgate-vllm | point 256 |" in "\n".join(slim_requests.tail_table(rows, slo_ms=500, top=0.01))
    table = slim_requests.tail_table(rows, slo_ms=1000, top=0.02)
    assert "slowest 2%, 2" in next(line for line in table if line.startswith("| lockgate-vllm"))


def test_paired_table_pools_interleaved_runs_by_request_and_reports_the_split(tmp_path: Path) -> None:
    from bench.gpu import paired_table, slim_requests

    def row(target: str, index: int, ttft: float, *, round_: int = 0, **split: float) -> slim_requests.Slim:
        return slim_requests.Slim(run="", target=target, point=0, load="c=1", round=round_, index=index,
                                  measured=True, outcome="ok", ttft_ms=ttft, e2e_ms=ttft + 255.0, n_out=256,
                                  split=split)

    # Two runs of the same indices (a second lease's file): pooled as different requests, not overwritten.
    a = [row("vllm-direct", i, 10.0 + i) for i in range(10)] + [
        row("lockgate-local", i, 11.0 + i, queue=0.3, relay=0.2) for i in range(10)]
    b = [row("vllm-direct", i, 20.0) for i in range(10)] + [row("lockgate-local", i, 23.0) for i in range(9)]
    files = []
    for n, rows in enumerate((a, b)):
        path = tmp_path / f"{n}.jsonl.xz"
        slim_requests.write(rows, path)
        files.append(str(path))
    lines = paired_table.table([slim_requests.read(Path(f)) for f in files], "vllm-direct")
    (line,) = lines[2:]
    cells = [c.strip() for c in line.strip("|").split("|")]
    assert cells[:3] == ["c=1", "lockgate-local", "19"]
    assert cells[4].startswith("+1.00 (+1.00 to +3.00)")  # 10 pairs at +1, 9 at +3
    assert cells[5] == "+0.000"  # the same stream after the first token
    # Kept, from the pairs' mean E2E: the baseline's 272.1 ms against 272.1 + 37/19 ms (19 pairs, 1 or 3 ms more).
    base_e2e = (sum(265.0 + i for i in range(10)) + 9 * 275.0) / 19
    assert cells[7].startswith(f"{base_e2e / (base_e2e + 37 / 19):.1%} (")
    assert cells[9:] == ["0.30", "0.20"]  # only the first file's rows carry the headers
    assert paired_table.main(files) == 0
