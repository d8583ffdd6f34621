"""The run clock: seconds since the run's start, shared by every client process.

Durations inside one process come from ``time.perf_counter()``; processes agree on the start through wall-clock
nanoseconds once, when each clock is built (skew between processes on one host is microseconds).
"""

from __future__ import annotations

import asyncio
import time


class RunClock:
    def __init__(self, start_wall_ns: int) -> None:
        self._perf0 = time.perf_counter()
        self._offset0 = (time.time_ns() - start_wall_ns) / 1e9

    def now(self) -> float:
        return self._offset0 + (time.perf_counter() - self._perf0)

    async def sleep_until(self, t: float) -> None:
        delay = t - self.now()
        if delay > 0:
            await asyncio.sleep(delay)
