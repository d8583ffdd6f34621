"""The run clock: seconds since the run's start, shared by every client process.

Durations inside one process come from ``time.perf_counter()``; processes agree on the start through wall-clock
nanoseconds once, when each clock is built (skew between processes on one host is microseconds).
"""

from __future__ import annotations

import asyncio
import time

SPIN_S = 0.0015


class RunClock:
    def __init__(self, start_wall_ns: int) -> None:
        self._perf0 = time.perf_counter()
        self._offset0 = (time.time_ns() - start_wall_ns) / 1e9

    def now(self) -> float:
        return self._offset0 + (time.perf_counter() - self._perf0)

    async def sleep_until(self, t: float) -> None:
        # uvloop's timers have millisecond resolution (a sleep ends up to 1 ms late, 0.5 ms on average), so
        # the last millisecond is waited by yielding to the loop: other requests keep being served meanwhile.
        delay = t - self.now()
        if delay > SPIN_S:
            await asyncio.sleep(delay - SPIN_S)
        # A busy wait on purpose (an Event cannot wake us at a time): sub-millisecond send times.
        while self.now() < t:  # noqa: ASYNC110
            await asyncio.sleep(0)
