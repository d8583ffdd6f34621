"""Entry point of the ``trtllm`` kind."""

from __future__ import annotations

from typing import Any

from backends.trtllm.backend import TrtllmBackend
from backends.trtllm.options import TrtllmOptions


class TrtllmPlugin:
    kind = "trtllm"
    options_type = TrtllmOptions

    def create(self, name: str, options: Any) -> TrtllmBackend:
        assert isinstance(options, TrtllmOptions)
        return TrtllmBackend(name, options)


plugin = TrtllmPlugin()
