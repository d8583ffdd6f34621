"""A retry budget: retries may be at most a fraction of recent requests, plus a small floor per second.

Bounded attempts per request are not enough when a whole fleet fails: every request would still multiply
the load by its attempt count. The budget keeps the fleet-wide multiplier near ``1 + ratio``.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable


class RetryBudget:
    def __init__(self, ratio: float, min_per_s: float, *, window_s: float = 10.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._ratio = ratio
        self._min_per_s = min_per_s
        self._window = window_s
        self._clock = clock
        self._requests: deque[float] = deque()
        self._retries: deque[float] = deque()

    def _trim(self, now: float) -> None:
        cut = now - self._window
        while self._requests and self._requests[0] < cut:
            self._requests.popleft()
        while self._retries and self._retries[0] < cut:
            self._retries.popleft()

    def record_request(self) -> None:
        self._requests.append(self._clock())

    def try_retry(self) -> bool:
        """Take one retry from the budget; False when it is spent."""
        now = self._clock()
        self._trim(now)
        allowed = self._ratio * len(self._requests) + self._min_per_s * self._window
        if len(self._retries) + 1 > allowed:
            return False
        self._retries.append(now)
        return True
