"""API keys: stored as SHA-256 hashes, compared in constant time, never logged."""

from __future__ import annotations

import hashlib
import hmac
import os

from gateway.config.schema import AuthConfig
from gateway.errors import APIError

ENV_KEYS = "LOCKGATE_API_KEYS"


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


class Authenticator:
    def __init__(self, enabled: bool, hashed: dict[str, str]) -> None:
        """``hashed`` maps hex SHA-256 digests to key names."""
        self.enabled = enabled
        self._digests = [(bytes.fromhex(d), name) for d, name in hashed.items()]

    @classmethod
    def from_config(cls, config: AuthConfig, environ: dict[str, str] | None = None) -> Authenticator:
        env = os.environ if environ is None else environ
        hashed = {k.sha256: k.name for k in config.keys}
        for i, key in enumerate(k.strip() for k in env.get(ENV_KEYS, "").split(",")):
            if key:
                hashed[hash_key(key)] = f"env-{i}"
        return cls(config.enabled, hashed)

    def authenticate(self, authorization: str | None) -> str | None:
        """Return the key's name (None when auth is off); raise a 401 APIError otherwise."""
        if not self.enabled:
            return None
        scheme, _, token = (authorization or "").partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise APIError(401, "You didn't provide an API key. You need to provide your API key in an "
                                "Authorization header using Bearer auth (i.e. Authorization: Bearer YOUR_KEY).",
                           type="invalid_request_error", code="invalid_api_key")
        digest = hashlib.sha256(token.strip().encode()).digest()
        found = None
        for stored, name in self._digests:  # no early exit: the time taken does not depend on which key matched
            if hmac.compare_digest(stored, digest):
                found = name
        if found is None:
            raise APIError(401, "Incorrect API key provided.", type="invalid_request_error", code="invalid_api_key")
        return found
