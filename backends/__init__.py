"""Engine adapters behind one Protocol, and the worker runtime that drives them."""

from backends.events import Completed, Delta, Event, Failed, Started
from backends.protocol import Backend, BackendPlugin, Health, HealthState, Load
from backends.request import ChatMessage, GenerationRequest

__all__ = [
    "Backend",
    "BackendPlugin",
    "ChatMessage",
    "Completed",
    "Delta",
    "Event",
    "Failed",
    "GenerationRequest",
    "Health",
    "HealthState",
    "Load",
    "Started",
]
