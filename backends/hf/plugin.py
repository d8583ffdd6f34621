"""Entry point of the ``hf`` kind."""

from __future__ import annotations

from typing import Any

from backends.hf.options import HfOptions
from backends.inproc.adapter import InprocBackend


class HfPlugin:
    kind = "hf"
    options_type = HfOptions

    def create(self, name: str, options: Any) -> InprocBackend:
        assert isinstance(options, HfOptions)

        def load() -> Any:
            # Imported here so that gateways without the ``hf`` extra can still list this kind.
            from backends.hf.engine import HfEngine

            return HfEngine(name, options)

        return InprocBackend(name, "transformers", options, load)


plugin = HfPlugin()
