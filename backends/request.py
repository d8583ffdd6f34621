"""The normalized generation request: what every adapter receives, whatever API the client used."""

from __future__ import annotations

from typing import Any, Literal

import msgspec

Operation = Literal["chat", "text_completion"]


class ChatMessage(msgspec.Struct, frozen=True):
    role: str
    content: str
    name: str | None = None


class GenerationRequest(msgspec.Struct, frozen=True):
    """Validated, engine-neutral parameters. Engine-specific extras travel untouched in ``extra``."""

    request_id: str
    model: str
    operation: Operation
    max_tokens: int
    stream: bool = True
    messages: tuple[ChatMessage, ...] = ()
    prompt: str = ""
    temperature: float | None = None
    top_p: float | None = None
    n: int = 1
    stop: tuple[str, ...] = ()
    seed: int | None = None
    user: str | None = None
    extra: dict[str, Any] = msgspec.field(default_factory=dict)
    priority: int = 0
    """The job's priority band: higher is served first, 0 is the default. Set from the job by the worker
    (``run_job``), never by the client; each adapter maps it onto its engine's own scale."""

    def prompt_text(self) -> str:
        """A flat rendering for engines without a chat template (the simulator, token counting)."""
        if self.operation == "text_completion":
            return self.prompt
        return "".join(f"<|{m.role}|>\n{m.content}\n" for m in self.messages) + "<|assistant|>\n"

    @property
    def ignore_eos(self) -> bool:
        return bool(self.extra.get("ignore_eos", False))
