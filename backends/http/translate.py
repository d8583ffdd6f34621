"""The contract between the shared stream loop and each protocol's chunk translator."""

from __future__ import annotations

from typing import Any, Protocol

import msgspec

from backends.events import Completed, Delta, Failed


class EngineCall(msgspec.Struct, frozen=True):
    """One HTTP request to an engine, built from a GenerationRequest."""

    path: str
    body: dict[str, Any]
    headers: dict[str, str] = msgspec.field(default_factory=dict)
    prompt_param: str = "messages"
    """The request field a context overflow is blamed on (``messages`` or ``prompt``)."""


class Translator(Protocol):
    tokens: int
    """Engine tokens turned into deltas so far."""

    def feed(self, chunk: Any, t_ns: int) -> list[Delta | Completed | Failed]:
        """One decoded JSON chunk in; deltas and perhaps the terminal event out."""
        ...

    def finish(self, saw_done: bool) -> Completed | Failed:
        """The stream ended (``saw_done``: with ``[DONE]``) and no terminal event was produced yet."""
        ...
