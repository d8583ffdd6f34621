"""A timeout on each of many short waits, at the cost of one timer per timeout period instead of one per wait.

``asyncio.timeout`` per streamed token (the idle timeout on each event, the write timeout on each chunk) costs a
timer handle, a context manager and two ``get_running_loop`` calls (each a ``getpid`` syscall on Python 3.11)
per token. A request waits thousands of times and almost never times out, so ``Watchdog`` only notes when the
current wait began; its single timer, re-armed lazily, cancels the waiting task once one wait has lasted the
whole timeout. The semantics are ``asyncio.timeout``'s: the wait raises ``TimeoutError`` (see ``expired``),
and a cancellation from anywhere else still propagates.
"""

from __future__ import annotations

import asyncio


class Watchdog:
    __slots__ = ("_default", "_loop", "_since", "_task", "_timeout", "_timer", "fired")

    def __init__(self, timeout_s: float, loop: asyncio.AbstractEventLoop) -> None:
        self._default = self._timeout = timeout_s
        self._loop = loop
        self._since: float | None = None
        self._task: asyncio.Task[object] | None = None
        self._timer: asyncio.TimerHandle | None = None
        self.fired = False

    def begin(self, timeout_s: float | None = None) -> None:
        """A wait starts now, in the current task; ``timeout_s`` for this wait only (default: the watchdog's)."""
        self._since = now = self._loop.time()
        self._task = asyncio.current_task(self._loop)
        self._timeout = self._default if timeout_s is None else timeout_s
        due = now + self._timeout
        if self._timer is not None and self._timer.when() > due:
            self._timer.cancel()  # armed for a longer wait than this one: it would fire too late
            self._timer = None
        if self._timer is None:
            self._timer = self._loop.call_at(due, self._check)

    def end(self) -> None:
        self._since = None

    def expired(self) -> bool:
        """Call on ``CancelledError`` from a wait: True when this watchdog caused it (raise TimeoutError then);
        False when the cancellation came from elsewhere (re-raise it)."""
        if not self.fired or self._task is None:
            return False
        self.fired = False
        return self._task.uncancel() == 0

    def close(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _check(self) -> None:
        self._timer = None
        if self._since is None:
            return  # not waiting: the next begin() re-arms
        due = self._since + self._timeout
        if self._loop.time() >= due and self._task is not None and not self._task.done():
            self.fired = True
            self._task.cancel()
            return
        self._timer = self._loop.call_at(due, self._check)
