"""API keys: stored as SHA-256 hashes, compared in constant time, never logged.

Inference keys and admin keys are separate sets: an admin key is never accepted for inference, and an
inference key never opens an admin route.
"""

from __future__ import annotations

import hashlib
import hmac
import os

from gateway.config.schema import AuthConfig
from gateway.errors import APIError

ENV_KEYS = "LOCKGATE_API_KEYS"
ENV_ADMIN_KEYS = "LOCKGATE_ADMIN_KEYS"


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


class KeySet:
    def __init__(self, hashed: dict[str, str]) -> None:
        """``hashed`` maps hex SHA-256 digests to key names."""
        self._digests = [(bytes.fromhex(d), name) for d, name in hashed.items()]

    def __bool__(self) -> bool:
        return bool(self._digests)

    def match(self, key: str) -> str | None:
        digest = hashlib.sha256(key.encode()).digest()
        found = None
        for stored, name in self._digests:  # no early exit: the time taken does not depend on which key matched
            if hmac.compare_digest(stored, digest):
                found = name
        return found


def missing_key() -> APIError:
    return APIError(401, "You didn't provide an API key. You need to provide your API key in an Authorization "
                         "header using Bearer auth (i.e. Authorization: Bearer YOUR_KEY).",
                    type="invalid_request_error", code="invalid_api_key")


def wrong_key(message: str = "Incorrect API key provided.") -> APIError:
    return APIError(401, message, type="invalid_request_error", code="invalid_api_key")


def bearer(authorization: str | None) -> str | None:
    scheme, _, token = (authorization or "").partition(" ")
    return token.strip() or None if scheme.lower() == "bearer" else None


def _with_env(hashed: dict[str, str], env: str, prefix: str) -> dict[str, str]:
    out = dict(hashed)
    for i, key in enumerate(k.strip() for k in env.split(",")):
        if key:
            out[hash_key(key)] = f"{prefix}-{i}"
    return out


class Authenticator:
    def __init__(self, enabled: bool, hashed: dict[str, str], admin_hashed: dict[str, str] | None = None) -> None:
        self.enabled = enabled
        self._keys = KeySet(hashed)
        self._admin = KeySet(admin_hashed or {})

    @classmethod
    def from_config(cls, config: AuthConfig, environ: dict[str, str] | None = None) -> Authenticator:
        env = os.environ if environ is None else environ
        keys = _with_env({k.sha256: k.name for k in config.keys}, env.get(ENV_KEYS, ""), "env")
        admin = _with_env({k.sha256: k.name for k in config.admin_keys}, env.get(ENV_ADMIN_KEYS, ""), "env-admin")
        return cls(config.enabled, keys, admin)

    def authenticate(self, authorization: str | None) -> str | None:
        """Return the inference key's name (None when auth is off); raise a 401 APIError otherwise."""
        if not self.enabled:
            return None
        token = bearer(authorization)
        if token is None:
            raise missing_key()
        name = self._keys.match(token)
        if name is None:
            raise wrong_key()
        return name

    @property
    def admin_open(self) -> bool:
        """Admin routes need no key only when auth is off and no admin key is configured (local use)."""
        return not self.enabled and not self._admin

    def authenticate_admin(self, key: str | None) -> str:
        """Return the admin key's name; raise 401 for a missing or non-admin key (inference keys included)."""
        if self.admin_open:
            return "local"
        name = self._admin.match(key) if key else None
        if name is None:
            raise APIError(401, "This route needs an admin key.", type="invalid_request_error",
                           code="invalid_admin_key")
        return name

    def admin_from_header(self, authorization: str | None) -> str:
        return self.authenticate_admin(bearer(authorization))
