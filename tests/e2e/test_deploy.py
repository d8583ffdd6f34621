"""docker-compose.yml and its configs, validated without Docker (none runs here): structure, references,
mounted files, lockgate commands, and every dashboard query naming a metric lockgate really exports."""

from __future__ import annotations

import json
import re
import shlex
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from gateway.cli import build_parser
from gateway.config import load_config
from tests.support.configs import sim_config
from tests.support.live import LiveServer

ROOT = Path(__file__).resolve().parents[2]
COMPOSE = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
SERVICES: dict[str, Any] = COMPOSE["services"]
DASHBOARD = json.loads((ROOT / "deploy/grafana/dashboards/lockgate.json").read_text())


def test_stack_has_every_component() -> None:
    core = {"redis", "gateway", "worker", "otel-collector", "jaeger", "prometheus", "grafana"}
    assert core <= set(SERVICES)
    for name in core:
        assert "profiles" not in SERVICES[name], f"{name} must start with a plain `docker compose up`"
    assert SERVICES["vllm-replica"]["profiles"] == ["demo"]
    assert SERVICES["sglang-replica"]["profiles"] == ["demo"]


@pytest.mark.parametrize("engine", ["vllm", "sglang", "trtllm"])
def test_engines_are_optional_profiles_with_gpu_reservations(engine: str) -> None:
    svc = SERVICES[engine]
    assert svc["profiles"] == [engine]
    devices = svc["deploy"]["resources"]["reservations"]["devices"]
    assert devices[0]["capabilities"] == ["gpu"]
    assert devices[0]["driver"] == "nvidia"


def test_references_between_services_resolve() -> None:
    for name, svc in SERVICES.items():
        deps = svc.get("depends_on", [])
        for dep in deps if isinstance(deps, list) else deps.keys():
            assert dep in SERVICES, f"{name} depends on unknown {dep}"


def test_bind_mounts_exist_in_the_repository() -> None:
    for name, svc in SERVICES.items():
        for volume in svc.get("volumes", []):
            source = volume.split(":")[0]
            assert source.startswith("./"), f"{name}: {volume}"
            assert (ROOT / source).exists(), f"{name} mounts missing {source}"


def test_lockgate_commands_parse_with_the_real_cli() -> None:
    parser = build_parser()
    lockgate_services = [n for n, s in SERVICES.items() if s.get("image") == "lockgate:local"]
    assert {"gateway", "worker", "vllm-replica", "sglang-replica"} <= set(lockgate_services)
    for name in lockgate_services:
        args = parser.parse_args(SERVICES[name]["command"])
        assert callable(args.func), name


def test_mounted_lockgate_config_is_valid() -> None:
    config = load_config(ROOT / "deploy/lockgate/lockgate.toml")
    assert config.dispatch.kind == "redis"
    assert config.telemetry.traces == "otlp"
    urls = {b.options["url"] for b in config.backends.values()}
    for url in urls:  # every backend URL points at a compose service on the port it listens on
        host, port = re.match(r"http://([^:/]+):(\d+)", url).groups()  # type: ignore[union-attr]
        assert host in SERVICES, url
        command = " ".join(map(str, SERVICES[host].get("command", [])))
        if "sim-server" in command or host == "sglang":
            assert port in command, url


def test_prometheus_scrapes_compose_services() -> None:
    prom = yaml.safe_load((ROOT / "deploy/prometheus/prometheus.yml").read_text())
    for job in prom["scrape_configs"]:
        for target in job["static_configs"][0]["targets"]:
            assert target.split(":")[0] in SERVICES, target


def test_collector_pipelines_reference_defined_components() -> None:
    col = yaml.safe_load((ROOT / "deploy/otel-collector/config.yaml").read_text())
    for pipeline in col["service"]["pipelines"].values():
        assert set(pipeline["receivers"]) <= set(col["receivers"])
        assert set(pipeline["exporters"]) <= set(col["exporters"])
        assert set(pipeline.get("processors", [])) <= set(col["processors"])
    assert col["exporters"]["otlp/jaeger"]["endpoint"].split(":")[0] in SERVICES


def test_grafana_provisioning_matches_the_dashboard() -> None:
    ds = yaml.safe_load((ROOT / "deploy/grafana/provisioning/datasources/datasources.yaml").read_text())
    uids = {d["uid"] for d in ds["datasources"]}
    prov = yaml.safe_load((ROOT / "deploy/grafana/provisioning/dashboards/dashboards.yaml").read_text())
    mounted = {v.split(":")[1] for v in SERVICES["grafana"]["volumes"]}
    assert prov["providers"][0]["options"]["path"] in mounted
    assert DASHBOARD["uid"]
    assert len({p["id"] for p in DASHBOARD["panels"]}) == len(DASHBOARD["panels"])
    for panel in DASHBOARD["panels"]:
        assert panel["datasource"]["uid"] in uids
        assert panel["targets"], panel["title"]
        for target in panel["targets"]:
            assert target["expr"].count("(") == target["expr"].count(")"), target["expr"]


def _exported_sample_names() -> set[str]:
    # Traffic that exercises every metric family the dashboard reads, retries included.
    config = sim_config(backends={"bad": {"fault": "fail_before_first_token", "ttft_ms": 1},
                                  "good": {"ttft_ms": 2, "tpot_ms": 1}},
                        routing={"health_interval_s": 0.05, "eject_after": 1000})
    with LiveServer(config) as server:
        # The router picks either backend first, so a retry (the "bad" one first) is likely in 6 requests, not
        # certain (one CI run in many had none): send more until one was counted.
        for i in range(120):
            httpx.post(server.url + "/v1/chat/completions", json={
                "model": "sim-small", "messages": [{"role": "user", "content": f"d{i}"}], "max_tokens": 4,
                "stream": True})
            if i >= 5 and "lockgate_routing_retries_total{" in httpx.get(server.url + "/metrics").text:
                break
        server.wait_for(lambda: bool(server.runtime.status), timeout=2)
        text = httpx.get(server.url + "/metrics").text
    return {line.split("{")[0].split(" ")[0] for line in text.splitlines() if line and not line.startswith("#")}


def test_every_dashboard_query_names_an_exported_metric() -> None:
    exported = _exported_sample_names()
    for panel in DASHBOARD["panels"]:
        for target in panel["targets"]:
            # Label names also look like metric names: drop selectors and by(...) clauses first.
            expr = re.sub(r"\{[^}]*\}", "", target["expr"])
            expr = re.sub(r"\b(?:by|without)\s*\([^)]*\)", "", expr)
            names = set(re.findall(r"\b((?:gen_ai|lockgate)_[a-z_]+)\b", expr))
            assert names, target["expr"]
            missing = names - exported
            assert not missing, f"panel {panel['title']!r} reads {missing}, not exported by lockgate"
    for var in DASHBOARD["templating"]["list"]:
        metric = re.search(r"label_values\((\w+),", var["query"]["query"]).group(1)  # type: ignore[union-attr]
        assert metric in exported


def test_compose_header_documents_the_entry_points() -> None:
    head = (ROOT / "docker-compose.yml").read_text().splitlines()[:6]
    assert any("docker compose --profile demo up" in line for line in head)
    assert shlex.split("docker compose up")  # the plain command needs no profile
