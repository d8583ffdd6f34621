"""The simulated engine: configured TTFT and per-token time, a batch with slowdown, deterministic text."""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import AsyncIterator, Awaitable, Callable

from backends.events import Completed, Delta, Event, Failed, Started
from backends.protocol import Health, HealthState, Load
from backends.request import GenerationRequest
from backends.sim.batch import Batch
from backends.sim.faults import FaultPlan, plan_faults
from backends.sim.options import SimOptions
from backends.sim.stops import StopScanner
from backends.sim.text import count_tokens, natural_length, next_token, rng_for

Sleep = Callable[[float], Awaitable[None]]


class _Choice:
    def __init__(self, request: GenerationRequest, index: int, options: SimOptions, limit: int) -> None:
        prompt = request.prompt_text()
        self.index = index
        self.rng = rng_for(prompt, request.seed, index)
        natural = natural_length(self.rng, options.eos_min_tokens, options.eos_max_tokens)
        min_tokens = int(request.extra.get("min_tokens", 0) or 0)
        self.length = limit if request.ignore_eos else min(limit, max(natural, min_tokens))
        self.finish = "length" if self.length == limit else "stop"
        self.scanner = StopScanner(request.stop)
        self.produced = 0
        self.pending_tokens = 0
        self.buffer = ""
        self.done = False


class SimBackend:
    """A simulator of an inference engine, for trying lockgate and measuring the gateway without a GPU."""

    engine = "sim"

    def __init__(
        self,
        name: str,
        options: SimOptions,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Sleep = asyncio.sleep,
    ) -> None:
        self.name = name
        self.options = options
        self.max_concurrency = options.max_concurrency or options.batch_capacity
        self.max_n = options.max_n
        self._clock = clock
        self._sleep = sleep
        self._batch: Batch | None = None
        self._state = HealthState.STARTING
        self._ready_at = 0.0
        self.started_requests = 0
        self.cancelled_requests = 0
        self.completed_requests = 0

    async def start(self) -> None:
        # Returns at once, like an engine server that binds early and loads its model in the background.
        self._batch = Batch(self.options.batch_capacity)
        self._ready_at = self._clock() + self.options.start_delay_ms / 1000
        self._state = HealthState.OK

    async def close(self) -> None:
        self._state = HealthState.DOWN

    async def health(self) -> Health:
        if self._state is HealthState.OK and self._clock() < self._ready_at:
            return Health(HealthState.STARTING, "simulator starting")
        reason = {HealthState.STARTING: "simulator not started", HealthState.DOWN: "simulator closed"}
        return Health(self._state, reason.get(self._state, ""))

    async def load(self) -> Load:
        if self._batch is None:
            return Load()
        return Load(waiting=self._batch.waiting, running=self._batch.running,
                    kv_cache_usage=self._batch.running / self._batch.capacity)

    async def generate(self, request: GenerationRequest) -> AsyncIterator[Event]:
        if self._batch is None:
            raise RuntimeError("SimBackend.generate() before start()")
        yield Started(backend=self.name, engine=self.engine, t_ns=time.time_ns())
        opts = self.options
        prompt_tokens = count_tokens(request.prompt_text())
        if prompt_tokens >= opts.max_model_len:
            yield Failed(
                type="invalid_request_error", code="context_length_exceeded", status=400, param="messages",
                message=f"This model's maximum context length is {opts.max_model_len} tokens. However, your "
                f"prompt contains {prompt_tokens} input tokens.",
            )
            return
        limit = min(request.max_tokens, opts.max_model_len - prompt_tokens)
        faults = plan_faults(opts, request.prompt_text())
        self.started_requests += 1
        finished = False
        try:
            async with self._batch.slots(request.n):
                async for event in self._decode(request, faults, prompt_tokens, limit):
                    finished = isinstance(event, Completed | Failed)
                    yield event
        except (asyncio.CancelledError, GeneratorExit):
            # Closing the generator after its terminal event is the normal end, not a cancellation.
            if not finished:
                self.cancelled_requests += 1
            raise

    async def _decode(
        self, request: GenerationRequest, faults: FaultPlan, prompt_tokens: int, limit: int
    ) -> AsyncIterator[Event]:
        opts = self.options
        assert self._batch is not None
        choices = [_Choice(request, i, opts, limit) for i in range(request.n)]
        due = self._clock() + opts.ttft_ms / 1000
        if faults.crash:
            os._exit(70)  # abrupt, like a segfault or the OOM killer: no cleanup, no ack
        if faults.hang:
            await asyncio.Event().wait()
        if faults.fail_before:
            await self._sleep(max(0.0, due - self._clock()))
            yield Failed(type="engine_error", message="simulated engine failure before the first token",
                         status=503, retryable=True)
            return
        sent_tokens = 0
        while not all(c.done for c in choices):
            await self._sleep(max(0.0, due - self._clock()))
            for c in choices:
                if c.done:
                    continue
                delta = self._step(c)
                if delta is not None:
                    sent_tokens += delta.tokens if c.index == 0 else 0
                    yield delta
            if faults.fail_after is not None and sent_tokens >= faults.fail_after:
                yield Failed(type="engine_error", status=500,
                             message=f"simulated engine failure after {sent_tokens} tokens")
                return
            slow = 1 + opts.slowdown_per_running * max(0, self._batch.running - 1)
            due += opts.tpot_ms / 1000 * slow
        self.completed_requests += 1
        yield Completed(
            finish_reasons=tuple(c.finish for c in choices),
            prompt_tokens=prompt_tokens,
            completion_tokens=sum(c.produced for c in choices),
        )

    def _step(self, c: _Choice) -> Delta | None:
        """Produce one token of choice ``c``; return a delta when a chunk is due."""
        c.buffer += c.scanner.push(next_token(c.rng, c.produced))
        c.produced += 1
        c.pending_tokens += 1
        if c.scanner.stopped:
            c.done, c.finish = True, "stop"
        elif c.produced >= c.length:
            c.done = True
            c.buffer += c.scanner.flush()
        if not c.done and c.pending_tokens < self.options.tokens_per_chunk:
            return None
        delta = Delta(text=c.buffer, tokens=c.pending_tokens, index=c.index, t_ns=time.time_ns())
        c.buffer, c.pending_tokens = "", 0
        return delta
