"""One generation in an in-process engine: its tokens, limits, stop handling and event output.

Engine threads call ``on_token`` for each sampled token; the sequence turns tokens into Deltas (held back while a
UTF-8 character or a possible stop string is incomplete) and ends itself with one Completed or Failed.
"""

from __future__ import annotations

import time
from collections.abc import Collection

import msgspec

from backends.events import Completed, Delta, Failed
from backends.inproc.detok import Decode, IncrementalDetokenizer
from backends.inproc.sink import EventSink
from backends.sim.stops import StopScanner  # engine-neutral; shared with the simulator


class SamplingParams(msgspec.Struct, frozen=True):
    temperature: float = 1.0
    top_p: float = 1.0
    top_k: int = 0
    seed: int | None = None

    @property
    def greedy(self) -> bool:
        return self.temperature <= 0.0 or self.top_k == 1


class Sequence:
    def __init__(
        self,
        *,
        prompt_ids: list[int],
        max_new_tokens: int,
        sampling: SamplingParams,
        stop: tuple[str, ...],
        eos_ids: Collection[int],
        ignore_eos: bool,
        min_tokens: int,
        decode: Decode,
        sink: EventSink,
    ) -> None:
        self.prompt_ids = prompt_ids
        self.max_new_tokens = max_new_tokens
        self.sampling = sampling
        self.eos_ids = frozenset(eos_ids)
        self.ignore_eos = ignore_eos
        self.min_tokens = min_tokens
        self.generated: list[int] = []
        # Plain attributes are enough across threads here: each is written by one side only, and the GIL makes the
        # write visible; the engine thread reads ``cancelled`` once per step.
        self.cancelled = False
        self.finished = False
        self.sink = sink
        self._detok = IncrementalDetokenizer(decode)
        self._stops = StopScanner(stop)
        self._pending_tokens = 0

    @property
    def prompt_len(self) -> int:
        return len(self.prompt_ids)

    @property
    def reserved_tokens(self) -> int:
        """KV positions this sequence may come to occupy."""
        return self.prompt_len + self.max_new_tokens

    @property
    def last_token(self) -> int:
        return self.generated[-1]

    def eos_allowed(self) -> bool:
        return not self.ignore_eos and len(self.generated) >= self.min_tokens

    def on_token(self, token: int) -> bool:
        """Record one sampled token and emit what it completes; return True when the sequence has finished."""
        if self.finished:
            return True
        self.generated.append(token)
        self._pending_tokens += 1
        if token in self.eos_ids and self.eos_allowed():
            self._finish(self._stops.push(self._detok.flush()) + self._stops.flush(), "stop")
            return True
        text = self._stops.push(self._detok.push(token))
        if self._stops.stopped:
            self._finish(text, "stop")
        elif len(self.generated) >= self.max_new_tokens:
            self._finish(text + self._stops.push(self._detok.flush()) + self._stops.flush(), "length")
        elif text:
            self._emit(text)
        return self.finished

    def finish_engine(self, reason: str) -> None:
        """The engine ended the sequence itself (its own EOS handling)."""
        if not self.finished:
            self._finish(self._stops.push(self._detok.flush()) + self._stops.flush(), reason)

    def fail(self, message: str, *, status: int = 500, type_: str = "engine_error", retryable: bool = False,
             code: str | None = None) -> None:
        if self.finished:
            return
        self.finished = True
        self.sink.put(Failed(type=type_, message=message, status=status, retryable=retryable and not self.generated,
                              code=code))

    def _emit(self, text: str) -> None:
        self.sink.put(Delta(text=text, tokens=self._pending_tokens, t_ns=time.time_ns()))
        self._pending_tokens = 0

    def _finish(self, text: str, reason: str) -> None:
        if text or self._pending_tokens:
            self._emit(text)
        self.finished = True
        self.sink.put(Completed(finish_reasons=(reason,), prompt_tokens=self.prompt_len,
                                 completion_tokens=len(self.generated)))
