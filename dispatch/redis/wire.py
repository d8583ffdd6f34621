"""What crosses Redis besides jobs: batches of events in inbox entries, and workers' health reports."""

from __future__ import annotations

import msgspec

from backends.events import Event
from backends.protocol import Health, Load


class WorkerReport(msgspec.Struct, frozen=True):
    """One worker's view of one backend, refreshed every heartbeat; stale once ``expires_ms`` passes."""

    worker: str
    health: Health
    load: Load | None
    running: int
    capacity: int
    expires_ms: int


_events_encoder = msgspec.msgpack.Encoder()
_events_decoder = msgspec.msgpack.Decoder(list[Event])
_report_decoder = msgspec.msgpack.Decoder(WorkerReport)


def encode_events(events: list[Event]) -> bytes:
    return _events_encoder.encode(events)


def decode_events(data: bytes) -> list[Event]:
    return _events_decoder.decode(data)


def encode_report(report: WorkerReport) -> bytes:
    return _events_encoder.encode(report)


def decode_report(data: bytes) -> WorkerReport:
    return _report_decoder.decode(data)


def text(value: bytes | str) -> str:
    """A Redis reply's string (bytes from a client that does not decode responses)."""
    return value.decode() if isinstance(value, bytes) else value
