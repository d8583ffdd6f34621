"""A job: one attempt at one request on one backend. Encoded as msgpack when it crosses a process boundary."""

from __future__ import annotations

import time

import msgspec

from backends.request import GenerationRequest


class Job(msgspec.Struct, frozen=True):
    id: str
    model: str
    backend: str
    request: GenerationRequest
    priority: int = 0
    """Higher is served first."""
    deadline_ns: int = 0
    """Wall-clock ns after which the job must not start; 0 means none."""
    traceparent: str | None = None
    reply_to: str = ""
    """Where events go: the owning gateway's inbox (empty for the embedded dispatch)."""
    attempt: int = 1
    enqueued_ns: int = 0
    """Wall-clock ns at enqueue; queue wait is measured from here across processes."""
    tenant: str = ""
    """Who asked (the API key's id; empty without auth): jobs of one priority band are shared fairly between
    tenants, so one tenant's burst does not starve another's."""

    def expired(self, now_ns: int | None = None) -> bool:
        return bool(self.deadline_ns) and (now_ns or time.time_ns()) > self.deadline_ns


_encoder = msgspec.msgpack.Encoder()
_decoder = msgspec.msgpack.Decoder(Job)


def encode_job(job: Job) -> bytes:
    return _encoder.encode(job)


def decode_job(data: bytes) -> Job:
    return _decoder.decode(data)
