"""What the async adapter needs from an in-process engine, whatever runs the model."""

from __future__ import annotations

import collections
from collections.abc import Sequence as Seq
from typing import Protocol

from backends.inproc.scheduler import Scheduler, StepRecord
from backends.inproc.sequence import Sequence
from backends.request import ChatMessage


class InprocEngine(Protocol):
    max_model_len: int
    eos_ids: frozenset[int]

    @property
    def dead(self) -> str | None:
        """Why the engine thread is gone, or None while it runs."""
        ...

    @property
    def steps(self) -> collections.deque[StepRecord]:
        """Recent engine steps, oldest first: how many sequences each decoded together."""
        ...

    def encode_chat(self, messages: Seq[ChatMessage]) -> list[int]: ...

    def encode_text(self, prompt: str) -> list[int]: ...

    def decode(self, ids: Seq[int]) -> str: ...

    def submit(self, seq: Sequence) -> None:
        """Queue a sequence; raises ``QueueFull`` or ``RuntimeError`` (engine dead)."""
        ...

    def cancelled(self, seq: Sequence) -> None:
        """``seq.cancelled`` was set: free its slot at the next step."""
        ...

    def running(self) -> int: ...

    def waiting(self) -> int: ...

    def close(self) -> None: ...


class ScheduledEngine:
    """The scheduler-facing half every in-process engine shares; an engine adds its model and tokenizer
    (``encode_chat``, ``encode_text``, ``decode``) and sets ``scheduler``."""

    scheduler: Scheduler

    @property
    def dead(self) -> str | None:
        return self.scheduler.dead

    @property
    def steps(self) -> collections.deque[StepRecord]:
        return self.scheduler.steps

    def submit(self, seq: Sequence) -> None:
        self.scheduler.submit(seq)

    def cancelled(self, seq: Sequence) -> None:
        self.scheduler.wake()

    def running(self) -> int:
        return self.scheduler.running

    def waiting(self) -> int:
        return self.scheduler.waiting

    def close(self) -> None:
        self.scheduler.stop()
