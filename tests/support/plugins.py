"""Test-only adapter plugins, injected through the PluginRegistry seam (never installed)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

from backends.events import Event
from backends.registry import PluginRegistry
from backends.request import GenerationRequest
from backends.sim.engine import SimBackend
from backends.sim.options import SimOptions
from backends.sim.plugin import plugin as sim_plugin


class RecordingSim(SimBackend):
    """The simulator, keeping every request it was given."""

    def __init__(self, name: str, options: SimOptions) -> None:
        super().__init__(name, options)
        self.received: list[GenerationRequest] = []

    async def generate(self, request: GenerationRequest) -> AsyncIterator[Event]:
        self.received.append(request)
        async for event in super().generate(request):
            yield event


class RecordingSimPlugin:
    kind = "recording-sim"
    options_type = SimOptions

    def create(self, name: str, options: Any) -> RecordingSim:
        return RecordingSim(name, options)


def registry() -> PluginRegistry:
    return PluginRegistry({"sim": sim_plugin, "recording-sim": RecordingSimPlugin()})
