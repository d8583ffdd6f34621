"""What a gateway needs from a dispatch implementation, embedded or Redis."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Protocol

import msgspec

from backends.events import Event
from backends.protocol import Health, Load
from dispatch.job import Job


class AdmissionRefused(Exception):
    """The backend's queue is full; the client should retry after ``retry_after`` seconds."""

    def __init__(self, backend: str, depth: int, retry_after: float) -> None:
        super().__init__(f"queue for backend {backend!r} is full ({depth} waiting)")
        self.backend = backend
        self.depth = depth
        self.retry_after = retry_after


class DispatchUnavailable(Exception):
    """The dispatch itself cannot take or deliver jobs (e.g. Redis unreachable)."""


class BackendStatus(msgspec.Struct, frozen=True):
    health: Health
    load: Load | None
    queued: int
    running: int


class Ticket(Protocol):
    """A submitted job, seen from the gateway."""

    job: Job
    wake: str
    """How the job reached a worker, once submitted (``observability.semconv.DISPATCH_WAKE``)."""

    def events(self) -> AsyncIterator[Event]:
        """The job's events, ending after the terminal one (Completed or Failed)."""
        ...

    def ready(self) -> list[Event]:
        """Events already delivered and not yet taken, without waiting (up to and including a terminal one).
        Consumers take the next event from ``events()`` and then these, to write them to the client at once."""
        ...

    async def cancel(self) -> None:
        """Stop the job: not started, or aborted in the engine; no further events are delivered."""
        ...


class Dispatcher(Protocol):
    async def start(self) -> None: ...

    async def close(self) -> None: ...

    async def submit(self, job: Job) -> Ticket:
        """Enqueue atomically with the queue-depth check. Raises AdmissionRefused or DispatchUnavailable."""
        ...

    async def ping(self) -> bool:
        """Whether jobs can be submitted now."""
        ...

    async def status(self) -> dict[str, BackendStatus]:
        """Health, load and queue figures of every backend this dispatch serves."""
        ...
