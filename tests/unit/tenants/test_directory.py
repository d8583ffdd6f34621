"""Key records: config and env keys, keys created through the API (stored hashed in the keys file), the
lookup cache that sets the revocation delay."""

from __future__ import annotations

from pathlib import Path

import pytest

from gateway.auth import hash_key
from gateway.config.schema import ApiKey, AuthConfig
from gateway.errors import APIError
from gateway.tenants.directory import KeyDirectory
from gateway.tenants.records import KeyCreate, KeyUpdate
from gateway.tenants.store import FileKeyStore, StoreUnavailable


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


def directory(path: Path | None, cache_s: float = 5.0, clock: list[float] | None = None) -> KeyDirectory:
    auth = AuthConfig(keys=(ApiKey(name="app", sha256=hash_key("sk-app"), rpm=10),))
    d = KeyDirectory.build(auth, {"LOCKGATE_API_KEYS": "dev-1"}, FileKeyStore(str(path) if path else None),
                           cache_s)
    if clock is not None:
        d._clock = lambda: clock[0]
    return d


@pytest.mark.anyio
async def test_config_and_env_keys_work_and_are_read_only() -> None:
    d = directory(None)
    assert (await d.authenticate("Bearer sk-app")).rpm == 10
    assert (await d.authenticate("Bearer dev-1")).id == "env-0"
    with pytest.raises(APIError) as err:
        await d.revoke("app")
    assert err.value.status == 409
    with pytest.raises(StoreUnavailable):
        await d.create(KeyCreate(name="x"))


@pytest.mark.anyio
async def test_created_key_is_stored_hashed_and_survives_a_restart(tmp_path: Path) -> None:
    path = tmp_path / "keys.toml"
    record, secret = await directory(path).create(KeyCreate(name="team", rpm=5, models=("m",)))
    assert secret.startswith("lg-")
    assert len(secret) > 40
    text = path.read_text()
    assert secret not in text
    assert hash_key(secret) in text
    again = directory(path)  # a new process reading the same file
    found = await again.authenticate(f"Bearer {secret}")
    assert (found.id, found.rpm, found.models) == (record.id, 5, ("m",))
    # One character off is another key.
    last = "A" if secret[-1] != "A" else "B"
    with pytest.raises(APIError) as err:
        await again.authenticate(f"Bearer {secret[:-1]}{last}")
    assert err.value.status == 401


@pytest.mark.anyio
async def test_revocation_reaches_another_gateway_within_the_cache_time(tmp_path: Path) -> None:
    path = tmp_path / "keys.toml"
    clock = [100.0]
    admin, other = directory(path), directory(path, cache_s=5.0, clock=clock)
    _, secret = await admin.create(KeyCreate(name="t"))
    other.store = FileKeyStore(str(path))  # sees the file as it is now
    await other.authenticate(f"Bearer {secret}")  # cached
    record = await admin.get((await admin.all())[-1].id)
    await admin.revoke(record.id)
    with pytest.raises(APIError):
        await admin.authenticate(f"Bearer {secret}")  # the gateway that revoked: at once
    other.store = FileKeyStore(str(path))
    clock[0] += 4.9
    assert (await other.authenticate(f"Bearer {secret}")).id == record.id  # within the stated delay: cached
    clock[0] += 0.2
    with pytest.raises(APIError) as err:
        await other.authenticate(f"Bearer {secret}")
    assert "revoked" in err.value.message


@pytest.mark.anyio
async def test_update_changes_limits_and_null_removes_them(tmp_path: Path) -> None:
    d = directory(tmp_path / "keys.toml")
    record, _ = await d.create(KeyCreate(name="t", rpm=5, tpm=100))
    changed = await d.update(record.id, KeyUpdate(rpm=None, tpm=200, priority=1))
    assert (changed.rpm, changed.tpm, changed.priority, changed.name) == (None, 200, 1, "t")
    with pytest.raises(APIError) as err:
        await d.update("nope", KeyUpdate(rpm=1))
    assert err.value.status == 404
