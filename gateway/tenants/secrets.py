"""New keys: ids and secrets. A secret is shown once; only its SHA-256 is kept."""

from __future__ import annotations

import secrets

SECRET_PREFIX = "lg-"


def new_secret() -> str:
    """``lg-`` and 43 URL-safe characters (256 random bits): recognisable in a leaked-secret scan."""
    return SECRET_PREFIX + secrets.token_urlsafe(32)


def new_key_id() -> str:
    return "key_" + secrets.token_hex(8)
