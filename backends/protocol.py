"""The adapter contract. Third parties ship adapters through the ``lockgate.backends`` entry-point group."""

from __future__ import annotations

from collections.abc import AsyncIterator
from enum import StrEnum
from typing import Any, Protocol, runtime_checkable

import msgspec
from opentelemetry.trace import Tracer

from backends.events import Event
from backends.request import GenerationRequest


class HealthState(StrEnum):
    OK = "ok"
    STARTING = "starting"
    DOWN = "down"


class Health(msgspec.Struct, frozen=True):
    state: HealthState
    reason: str = ""

    @property
    def ok(self) -> bool:
        return self.state is HealthState.OK


class Load(msgspec.Struct, frozen=True):
    """Load as the engine itself reports it."""

    waiting: int = 0
    running: int = 0
    kv_cache_usage: float | None = None


@runtime_checkable
class Backend(Protocol):
    name: str
    engine: str
    """Engine family for telemetry (``gen_ai.provider.name``): vllm, sglang, tensorrt_llm, transformers, ..."""
    max_concurrency: int
    """How many jobs a worker should run on this backend at once."""
    max_n: int
    """Largest ``n`` this backend can produce in one request."""

    async def start(self) -> None: ...

    async def close(self) -> None: ...

    async def health(self) -> Health: ...

    async def load(self) -> Load | None: ...

    def generate(self, request: GenerationRequest) -> AsyncIterator[Event]:
        """Yield Started, Deltas and one terminal event. Cancelled by cancelling the consuming task."""
        ...


@runtime_checkable
class Traced(Protocol):
    """A backend that records its own spans (e.g. a CLIENT span per engine call) on the runtime's tracer."""

    def use_tracer(self, tracer: Tracer) -> None: ...


@runtime_checkable
class BackendPlugin(Protocol):
    kind: str
    options_type: type[msgspec.Struct]

    def create(self, name: str, options: Any) -> Backend:
        """Build a backend from options already converted to ``options_type``."""
        ...
