"""The queue between gateways and workers: one contract, an in-process and a Redis Streams implementation."""

from dispatch.contract import AdmissionRefused, BackendStatus, Dispatcher, DispatchUnavailable, Ticket
from dispatch.job import Job

__all__ = ["AdmissionRefused", "BackendStatus", "DispatchUnavailable", "Dispatcher", "Job", "Ticket"]
