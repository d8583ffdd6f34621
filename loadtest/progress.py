"""A one-line progress bar on stderr, redrawn by a thread from a counter that the client loop bumps."""

from __future__ import annotations

import sys
import threading
import time
from typing import Protocol, TextIO


class Counted(Protocol):
    @property
    def value(self) -> int: ...


class LocalTally:
    """The counter of a single-process run (a multi-process run uses a shared ``multiprocessing.Value``)."""

    def __init__(self) -> None:
        self.value = 0

    def add(self, n: int) -> None:
        self.value += n


class ProgressBar:
    def __init__(self, label: str, total: int | None, duration_s: float | None, counted: Counted,
                 stream: TextIO | None = None, enabled: bool = True, width: int = 30) -> None:
        self.label = label
        self.total = total
        self.duration_s = duration_s
        self.counted = counted
        self.stream = stream or sys.stderr
        self.enabled = enabled
        self.width = width
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)
        self._t0 = time.monotonic()

    def line(self) -> str:
        done, elapsed = self.counted.value, time.monotonic() - self._t0
        if self.total:
            frac = min(1.0, done / self.total)
            tail = f"{done}/{self.total} req"
        else:
            frac = min(1.0, elapsed / self.duration_s) if self.duration_s else 0.0
            tail = f"{done} req"
        filled = int(frac * self.width)
        return (f"{self.label} [{'#' * filled}{'.' * (self.width - filled)}] {tail}  {elapsed:5.1f}s  "
                f"{done / elapsed if elapsed > 0 else 0.0:6.1f} req/s")

    def _loop(self) -> None:
        while not self._stop.wait(0.25):
            self.stream.write("\r" + self.line())
            self.stream.flush()

    def __enter__(self) -> ProgressBar:
        if self.enabled:
            self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        if self.enabled:
            self._stop.set()
            self._thread.join()
            self.stream.write("\r" + self.line() + "\n")
            self.stream.flush()
