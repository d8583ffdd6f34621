"""Entry point of the ``sim`` kind."""

from __future__ import annotations

from typing import Any

from backends.sim.engine import SimBackend
from backends.sim.options import SimOptions


class SimPlugin:
    kind = "sim"
    options_type = SimOptions

    def create(self, name: str, options: Any) -> SimBackend:
        assert isinstance(options, SimOptions)
        return SimBackend(name, options)


plugin = SimPlugin()
