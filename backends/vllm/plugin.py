"""Entry point of the ``vllm`` kind."""

from __future__ import annotations

from typing import Any

from backends.vllm.backend import VllmBackend
from backends.vllm.options import VllmOptions


class VllmPlugin:
    kind = "vllm"
    options_type = VllmOptions

    def create(self, name: str, options: Any) -> VllmBackend:
        assert isinstance(options, VllmOptions)
        return VllmBackend(name, options)


plugin = VllmPlugin()
