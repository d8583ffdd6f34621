"""What differs between the engines' wire protocols, behind one small interface the replica app drives."""

from __future__ import annotations

from typing import Any, Protocol

import msgspec

from backends.events import Completed, Delta, Failed
from backends.protocol import Load
from backends.request import GenerationRequest


class Renderer(Protocol):
    """One generation's bytes, in one engine's format."""

    def head(self) -> bytes: ...

    def delta(self, d: Delta) -> bytes: ...

    def completed(self, c: Completed) -> bytes: ...

    def failed(self, f: Failed) -> bytes | None:
        """A failure after the response started; None: the engine cuts the connection without a word."""
        ...

    def full(self, c: Completed) -> bytes:
        """The whole non-streaming body."""
        ...


class Route(msgspec.Struct, frozen=True):
    """A generation endpoint: ``kind`` is chat, completion, generate (SGLang native) or triton."""

    kind: str


class Dialect(Protocol):
    name: str

    def routes(self) -> dict[tuple[str, str], Route | str]:
        """(method, path) -> a generation Route, or the name of an info endpoint handled by ``info``."""
        ...

    def parse(self, route: Route, body: dict[str, Any]) -> GenerationRequest:
        """Raises ``BadRequest`` or ``ValueError`` for a body the engine would refuse."""
        ...

    def renderer(self, route: Route, request: GenerationRequest, body: dict[str, Any],
                 prompt_tokens: int) -> Renderer: ...

    def error(self, route: Route, failed: Failed, status: int) -> bytes:
        """The body of an HTTP error answered before any chunk."""
        ...

    def info(self, name: str, load: Load, model: str) -> tuple[int, bytes, bytes]:
        """An info endpoint (health, metrics, loads, models): status, body, content type."""
        ...

    def context_error(self, route: Route, prompt_tokens: int, limit: int) -> tuple[int, bytes]:
        """The engine's own answer to a prompt over its context (none sends ``context_length_exceeded``)."""
        ...

