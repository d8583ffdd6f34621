"""An ASGI factory, for running lockgate under an ASGI server of your choice.

``LOCKGATE_CONFIG`` names the config file (default: the built-in one), e.g.
``LOCKGATE_CONFIG=lockgate.toml granian --interface asgi --factory gateway.asgi:create``.
``lockgate serve`` (uvicorn with uvloop and httptools) is the measured default; see docs/performance.md.
"""

from __future__ import annotations

import os

from litestar.types import ASGIApp

from gateway.app import asgi_app
from gateway.config import load_config, load_default_config
from gateway.runtime import Runtime


def create() -> ASGIApp:
    path = os.environ.get("LOCKGATE_CONFIG")
    return asgi_app(Runtime(load_config(path) if path else load_default_config()))
