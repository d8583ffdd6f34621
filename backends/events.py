"""Events an adapter yields for one job. Tagged msgspec Structs so they cross a queue as msgpack unchanged.

A job's event sequence is: ``Started``, any number of ``Delta``, then exactly one terminal event:
``Completed`` or ``Failed``.
"""

from __future__ import annotations

import msgspec


class _Event(msgspec.Struct, frozen=True, tag_field="ev"):
    pass


class Started(_Event, tag="started", frozen=True):
    backend: str
    engine: str
    worker: str = ""
    t_ns: int = 0
    """Wall-clock ns when the worker began the engine call (queue wait ends here)."""


class Delta(_Event, tag="delta", frozen=True, omit_defaults=True):
    # omit_defaults: the engine-call fields below are set on a job's first delta only; the others cost no bytes.
    text: str
    tokens: int
    """Number of engine tokens this delta carries (chunks may carry several)."""
    index: int = 0
    """Choice index, for ``n`` > 1."""
    t_ns: int = 0
    """Wall-clock ns when the chunk arrived from the engine."""
    head_ns: int = 0
    """First delta of an HTTP engine call only: wall-clock ns when the engine's response head arrived (its API
    server had taken the request, before its first token)."""
    connect_ns: int = -1
    """First delta of an HTTP engine call only: ns spent opening a new connection to the engine for this call (0:
    it went out on a kept one; -1: not known, as with the ``httpx`` client, or no HTTP call)."""


class Completed(_Event, tag="completed", frozen=True):
    finish_reasons: tuple[str, ...]
    """One per choice, by index: ``stop`` or ``length``."""
    prompt_tokens: int
    completion_tokens: int


class Failed(_Event, tag="failed", frozen=True):
    type: str
    message: str
    status: int = 500
    retryable: bool = False
    """True when another backend may take the job (only before any token reached the client)."""
    code: str | None = None
    param: str | None = None


Event = Started | Delta | Completed | Failed
TERMINAL = (Completed, Failed)
