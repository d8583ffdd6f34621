"""``lockgate keys ...`` against a running gateway's admin API: table and JSON output, errors, --help."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import openai
import pytest

from gateway.auth import hash_key
from tests.e2e.tenants.helpers import ADMIN_KEY, chat
from tests.support.configs import sim_config
from tests.support.live import LiveServer
from tests.support.procs import lockgate


@pytest.fixture
def live(tmp_path: Path) -> Iterator[LiveServer]:
    config = sim_config(auth_keys=[], admin_keys=[("ops", hash_key(ADMIN_KEY))],
                        tenants={"keys_file": str(tmp_path / "keys.toml")})
    with LiveServer(config) as server:
        yield server


def keys(live: LiveServer, *args: str) -> tuple[int, str, str]:
    done = lockgate("keys", *args, "--url", live.url, env={"LOCKGATE_ADMIN_KEY": ADMIN_KEY})
    return done.returncode, done.stdout, done.stderr


def test_create_list_show_update_usage_revoke(live: LiveServer) -> None:
    code, out, _ = keys(live, "create", "--name", "cli-team", "--rpm", "100", "--model", "sim-small", "--json")
    assert code == 0
    created = json.loads(out)
    key_id, secret = created["id"], created["secret"]
    assert secret.startswith("lg-")
    sdk = openai.OpenAI(base_url=live.url + "/v1", api_key=secret, max_retries=0)
    sdk.chat.completions.create(**chat("sim-small", max_tokens=3))

    code, out, _ = keys(live, "create", "--name", "table", "--expires", "2099-01-31")
    assert code == 0
    assert "secret: lg-" in out
    assert "2099-01-31" in out

    code, out, _ = keys(live, "list")
    assert code == 0
    header, *rows = out.strip().splitlines()
    assert header.split()[:3] == ["id", "name", "models"]
    row = next(r for r in rows if r.startswith(key_id))
    assert row.split()[1:5] == ["cli-team", "sim-small", "0", "100"]
    assert row.split()[-1] == "active"
    assert secret not in out

    code, out, _ = keys(live, "update", key_id, "--no-rpm", "--tpm", "5000", "--priority", "1", "--json")
    assert code == 0
    assert (json.loads(out)["rpm"], json.loads(out)["tpm"], json.loads(out)["priority"]) == (None, 5000, 1)

    code, out, _ = keys(live, "usage", key_id, "--days", "2")
    assert code == 0
    total = next(line for line in out.splitlines() if line.startswith("total"))
    assert total.split()[1:4] == ["sim-small", "1", str(json.loads(keys(live, "usage", key_id, "--json")[1])
                                                          ["totals"][0]["prompt_tokens"])]

    code, out, _ = keys(live, "revoke", key_id)
    assert code == 0
    assert out.strip().splitlines()[1].split()[-1] == "revoked"
    with pytest.raises(openai.AuthenticationError):
        sdk.models.list()
    code, out, _ = keys(live, "show", key_id, "--json")
    assert json.loads(out)["revoked_at"] is not None


def test_errors_are_reported_not_raised(live: LiveServer) -> None:
    code, _, err = keys(live, "show", "key_missing")
    assert code == 1
    assert "404" in err
    assert "key_missing" in err
    done = lockgate("keys", "list", "--url", live.url, "--admin-key", "sk-not-admin")
    assert done.returncode == 1
    assert "401" in done.stderr
    code, _, err = keys(live, "update", "key_x")
    assert code == 2
    assert "nothing to change" in err


def test_help_has_examples() -> None:
    for sub in ("create", "list", "show", "revoke", "update", "usage"):
        done = lockgate("keys", sub, "--help")
        assert done.returncode == 0
        assert "examples:" in done.stdout
        assert f"lockgate keys {sub}" in done.stdout
    assert "lockgate keys create" in lockgate("keys", "--help").stdout
