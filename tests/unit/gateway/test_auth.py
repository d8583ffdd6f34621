"""API keys: hashed, constant-time compared, 401 in OpenAI's shape."""

from __future__ import annotations

import hashlib

import pytest

from gateway.auth import Authenticator, hash_key
from gateway.config.schema import ApiKey, AuthConfig
from gateway.errors import APIError

KEY = "sk-live-abcdef0123456789"


def auth(env: dict[str, str] | None = None) -> Authenticator:
    return Authenticator.from_config(AuthConfig(keys=(ApiKey(name="app", sha256=hash_key(KEY)),)), env or {})


def test_stored_form_is_the_sha256_not_the_key() -> None:
    assert hash_key(KEY) == hashlib.sha256(KEY.encode()).hexdigest()
    assert KEY not in repr(auth().__dict__)


def test_correct_key_names_its_owner() -> None:
    assert auth().authenticate(f"Bearer {KEY}") == "app"


@pytest.mark.parametrize("header", [None, "", "Bearer ", "Basic abc", f"Bearer {KEY[:-1]}X", f"Bearer {KEY}x",
                                    f"Bearer {KEY[:-1]}"])
def test_missing_or_wrong_keys_are_401(header: str | None) -> None:
    with pytest.raises(APIError) as err:
        auth().authenticate(header)
    assert err.value.status == 401
    assert err.value.code == "invalid_api_key"


def test_env_keys_are_accepted() -> None:
    a = auth({"LOCKGATE_API_KEYS": "dev-1, dev-2"})
    assert a.authenticate("Bearer dev-2") == "env-1"
    assert a.authenticate(f"Bearer {KEY}") == "app"


def test_disabled_auth_lets_anything_through() -> None:
    assert Authenticator(False, {}).authenticate(None) is None
