"""Schemathesis against the served OpenAPI document: no 500s, every error in OpenAI's shape, responses
conform to the document. Runs in CI (make test)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, settings

from gateway.auth import hash_key
from tests.support.configs import sim_config
from tests.support.live import LiveServer

KEY = "sk-fuzz-0123456789"
ADMIN_KEY = "sk-fuzz-admin-0123456789"


@pytest.fixture(scope="module")
def fuzz_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    # A zero-latency simulator, so thousands of generated requests stay fast. The admin key opens the key
    # routes, whose writes land in a keys file of this test's own.
    keys_file = Path(tmp_path_factory.mktemp("fuzz")) / "keys.toml"
    config = sim_config(backends={"sim": {"ttft_ms": 0, "tpot_ms": 0}}, max_output_tokens=64,
                        auth_keys=[("fuzz", hash_key(KEY))], admin_keys=[("fuzz-admin", hash_key(ADMIN_KEY))],
                        tenants={"keys_file": str(keys_file)})
    with LiveServer(config) as server:
        yield server


@pytest.fixture(scope="module")
def api_schema(fuzz_server: LiveServer) -> schemathesis.BaseSchema:
    return schemathesis.openapi.from_url(fuzz_server.url + "/openapi.json")


schema = schemathesis.pytest.from_fixture("api_schema")


@schemathesis.check
def errors_in_openai_shape(ctx: schemathesis.CheckContext, response: schemathesis.Response,
                           case: schemathesis.Case) -> None:
    if response.status_code < 400:
        return
    body = json.loads(response.content)
    assert set(body) == {"error"}, body
    assert set(body["error"]) == {"message", "type", "param", "code"}, body
    assert body["error"]["message"], body
    assert "Traceback" not in response.text


@schema.parametrize()
@settings(max_examples=100, deadline=None, suppress_health_check=list(HealthCheck))
def test_api_never_errors_with_500_and_speaks_openai_errors(case: schemathesis.Case) -> None:
    key = ADMIN_KEY if case.path.startswith("/v1/lockgate/") else KEY
    case.call_and_validate(headers={"Authorization": f"Bearer {key}"}, additional_checks=[errors_in_openai_shape])


def test_openapi_document_lists_every_route(fuzz_server: LiveServer) -> None:
    doc = httpx.get(fuzz_server.url + "/openapi.json").json()
    assert doc["openapi"] == "3.1.0"
    assert set(doc["paths"]) == {"/v1/chat/completions", "/v1/completions", "/v1/models", "/v1/models/{model_id}",
                                 "/v1/lockgate/experiments", "/v1/lockgate/keys", "/v1/lockgate/keys/{key_id}",
                                 "/v1/lockgate/keys/{key_id}/usage", "/healthz", "/readyz", "/metrics",
                                 "/openapi.json"}
    assert "ChatCompletionRequest" in doc["components"]["schemas"]
