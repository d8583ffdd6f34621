"""Entry point of the ``sglang`` kind."""

from __future__ import annotations

from typing import Any

from backends.sglang.backend import SglangBackend
from backends.sglang.options import SglangOptions


class SglangPlugin:
    kind = "sglang"
    options_type = SglangOptions

    def create(self, name: str, options: Any) -> SglangBackend:
        assert isinstance(options, SglangOptions)
        return SglangBackend(name, options)


plugin = SglangPlugin()
