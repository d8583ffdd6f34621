"""Continuous batching over a ``BatchRunner``, in one dedicated thread per model.

Each step: drop cancelled sequences, admit waiting ones (prefill, within ``max_batch_size`` and the KV token budget),
then run one decode step for every running sequence together. Finished sequences leave the batch right after the
step that finished them, so a slot frees at the next step. An exception in a step fails the sequences it touched
(never leaving their clients waiting) and the loop goes on; if the thread itself dies, every queued and running
sequence is failed.
"""

from __future__ import annotations

import collections
import logging
import threading
import time
from typing import Protocol

import msgspec

from backends.inproc.sequence import Sequence
from backends.inproc.sink import flush

log = logging.getLogger("lockgate.inproc")


class BatchRunner(Protocol):
    def prefill(self, seq: Sequence) -> int:
        """Run the prompt, append the sequence as the batch's last row, return its first sampled token."""
        ...

    def decode(self, seqs: list[Sequence]) -> list[int]:
        """One decode step for all rows (in batch order), feeding each row's last token; return next tokens."""
        ...

    def remove(self, rows: list[int]) -> None:
        """Drop rows from the batch (their KV cache is freed)."""
        ...

    def reset(self) -> None:
        """Drop every row (after a failed step the batch state is unknown)."""
        ...


class StepRecord(msgspec.Struct, frozen=True):
    t_ns: int
    batch_size: int
    """Sequences decoded together in this step."""
    prefilled: int
    """Sequences that joined the batch just before this step."""
    duration_ns: int = 0
    """Model time of the decode step (forward pass and sampling)."""


class QueueFull(Exception):
    pass


class Scheduler:
    def __init__(self, runner: BatchRunner, *, name: str, max_batch_size: int, max_batch_tokens: int,
                 max_waiting: int, step_log_size: int) -> None:
        self._runner = runner
        self._max_batch_size = max_batch_size
        self._max_batch_tokens = max_batch_tokens
        self._max_waiting = max_waiting
        self._waiting: collections.deque[Sequence] = collections.deque()
        self._running: list[Sequence] = []
        self._cond = threading.Condition()
        self._stopping = False
        self.steps: collections.deque[StepRecord] = collections.deque(maxlen=step_log_size)
        self.max_batch_seen = 0
        self.dead: str | None = None
        self._touched: list[Sequence] = []  # sequences with events to deliver at the end of this step
        self._thread = threading.Thread(target=self._run, name=f"lockgate-engine-{name}", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        with self._cond:
            self._stopping = True
            self._cond.notify()
        self._thread.join(timeout)

    def submit(self, seq: Sequence) -> None:
        with self._cond:
            if self.dead is not None:
                raise RuntimeError(self.dead)
            if len(self._waiting) >= self._max_waiting + self._max_batch_size - len(self._running):
                raise QueueFull
            self._waiting.append(seq)
            self._cond.notify()

    def wake(self) -> None:
        """Called after a cancellation so an idle-waiting loop notices it."""
        with self._cond:
            self._cond.notify()

    @property
    def running(self) -> int:
        return len(self._running)

    @property
    def waiting(self) -> int:
        return len(self._waiting)

    def _run(self) -> None:
        try:
            while True:
                with self._cond:
                    while not self._stopping and not self._waiting and not self._running:
                        self._cond.wait()
                    if self._stopping:
                        break
                try:
                    self._step()
                finally:
                    flush(s.sink for s in self._touched)
                    self._touched = []
            self._fail_all("the engine was shut down", status=503)
        except BaseException as exc:  # the thread must never die silently with clients waiting
            log.exception("engine thread crashed")
            self.dead = f"engine thread crashed: {type(exc).__name__}: {exc}"
            self._fail_all(self.dead, status=500)

    def _step(self) -> None:
        self._drop(lambda s: s.cancelled)
        admitted = self._admit()
        if not self._running:
            return
        self._touched += self._running
        started = time.perf_counter_ns()
        try:
            tokens = self._runner.decode(self._running)
        except Exception as exc:
            log.exception("decode step failed; failing %d sequences", len(self._running))
            for seq in self._running:
                seq.fail(f"engine step failed: {type(exc).__name__}: {exc}")
            self._running = []
            self._runner.reset()
            return
        size = len(self._running)
        self.max_batch_seen = max(self.max_batch_seen, size)
        self.steps.append(StepRecord(t_ns=time.time_ns(), batch_size=size, prefilled=admitted,
                                     duration_ns=time.perf_counter_ns() - started))
        for seq, token in zip(self._running, tokens, strict=True):
            seq.on_token(token)
        self._drop(lambda s: s.finished)

    def _admit(self) -> int:
        admitted = 0
        reserved = sum(s.reserved_tokens for s in self._running)
        while len(self._running) < self._max_batch_size:
            with self._cond:
                if not self._waiting:
                    break
                seq = self._waiting[0]
                # An oversized sequence still runs alone, so it cannot wait forever.
                if self._running and reserved + seq.reserved_tokens > self._max_batch_tokens:
                    break
                self._waiting.popleft()
            if seq.cancelled:
                continue
            self._touched.append(seq)
            try:
                token = self._runner.prefill(seq)
            except Exception as exc:
                log.exception("prefill failed")
                seq.fail(f"engine prefill failed: {type(exc).__name__}: {exc}")
                # The runner appends the row only on success, but a half-done append leaves it unknown.
                self._touched += self._running
                for other in self._running:
                    other.fail(f"engine prefill failed: {type(exc).__name__}: {exc}")
                self._running = []
                self._runner.reset()
                return admitted
            self._running.append(seq)
            reserved += seq.reserved_tokens
            admitted += 1
            if seq.on_token(token):
                self._drop(lambda s: s.finished)
        return admitted

    def _drop(self, gone: _Pred) -> None:
        # Evaluate once: ``cancelled`` may flip between two reads, and rows must match the runner's batch.
        rows = [i for i, s in enumerate(self._running) if gone(s)]
        if rows:
            self._runner.remove(rows)
            drop = set(rows)
            self._running = [s for i, s in enumerate(self._running) if i not in drop]

    def _fail_all(self, message: str, *, status: int) -> None:
        with self._cond:
            pending = list(self._waiting) + self._running
            self._waiting.clear()
            self._running = []
        for seq in pending:
            seq.fail(message, status=status)
        flush(s.sink for s in pending)


class _Pred(Protocol):
    def __call__(self, seq: Sequence, /) -> bool: ...
