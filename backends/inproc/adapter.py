"""The async side of an in-process engine: the ``Backend`` the worker drives.

Tokenizing, the context check and event relaying run on the event loop; the model runs in the engine's own
thread. Cancelling the consuming task marks the sequence cancelled, and the engine drops it at its next step.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import AsyncIterator, Callable

from backends.events import Completed, Event, Failed, Started
from backends.inproc.engine import InprocEngine
from backends.inproc.options import InprocOptions
from backends.inproc.scheduler import QueueFull
from backends.inproc.sequence import SamplingParams, Sequence
from backends.inproc.sink import EventSink
from backends.protocol import Health, HealthState, Load
from backends.request import GenerationRequest

log = logging.getLogger("lockgate.inproc")

# Model loads run one at a time per process: two threads importing numpy's C extension at once fail with
# "cannot load module more than once per process" (torch and onnxruntime both import it), and loading one model
# at a time also bounds the memory peak.
_LOAD_LOCK = threading.Lock()


class InprocBackend:
    """Generic over the engine: ``hf`` and ``onnx`` differ only in the ``load`` function that builds the engine."""

    max_n = 1

    def __init__(self, name: str, engine_name: str, options: InprocOptions,
                 load: Callable[[], InprocEngine]) -> None:
        self.name = name
        self.engine = engine_name
        self.options = options
        # The worker hands us every concurrent job; we do the batching and queueing ourselves.
        self.max_concurrency = options.max_batch_size + options.max_waiting
        self._load = load
        self._engine: InprocEngine | None = None
        self._state = HealthState.STARTING
        self._reason = "model loading"
        self._loading: asyncio.Task[None] | None = None

    @property
    def inproc(self) -> InprocEngine | None:
        return self._engine

    async def start(self) -> None:
        # Returns at once, like an engine server that binds early: loading weights takes seconds to minutes, so it
        # runs in a thread while health reports ``starting`` (requests meanwhile get a retryable 503).
        self._loading = asyncio.create_task(self._load_model(), name=f"load-{self.name}")

    async def _load_model(self) -> None:
        try:
            self._engine = await asyncio.to_thread(self._load_serialized)
        except Exception as exc:
            log.exception("backend %s: model failed to load", self.name)
            self._state, self._reason = HealthState.DOWN, f"model failed to load: {type(exc).__name__}: {exc}"
            return
        self._state, self._reason = HealthState.OK, ""

    def _load_serialized(self) -> InprocEngine:
        with _LOAD_LOCK:
            return self._load()

    async def close(self) -> None:
        if self._loading is not None and not self._loading.done():
            # A thread cannot be interrupted: wait for the load to end, then close what it built.
            await asyncio.shield(self._loading)
        engine, self._engine = self._engine, None
        self._state, self._reason = HealthState.DOWN, "closed"
        if engine is not None:
            await asyncio.to_thread(engine.close)

    async def health(self) -> Health:
        if self._engine is not None and self._engine.dead is not None:
            return Health(HealthState.DOWN, self._engine.dead)
        return Health(self._state, self._reason)

    async def load(self) -> Load | None:
        if self._engine is None:
            return None
        running = self._engine.running()
        return Load(waiting=self._engine.waiting(), running=running,
                    kv_cache_usage=running / self.options.max_batch_size)

    async def generate(self, request: GenerationRequest) -> AsyncIterator[Event]:
        yield Started(backend=self.name, engine=self.engine, t_ns=time.time_ns())
        engine = self._engine
        if engine is None:
            yield Failed(type="engine_error", status=503, retryable=True, message=f"backend {self.name!r} is not ready")
            return
        if request.n != 1:
            yield Failed(type="invalid_request_error", status=400, param="n",
                         message=f"backend {self.name!r} serves n=1 only")
            return
        if request.operation == "chat":
            prompt_ids = engine.encode_chat(request.messages)
        else:
            prompt_ids = engine.encode_text(request.prompt)
        limit = engine.max_model_len
        if len(prompt_ids) >= limit:
            yield Failed(type="invalid_request_error", code="context_length_exceeded", status=400,
                         param="messages" if request.operation == "chat" else "prompt",
                         message=f"This model's maximum context length is {limit} tokens. However, your prompt "
                         f"contains {len(prompt_ids)} input tokens, leaving no room for output.")
            return
        sink = EventSink(asyncio.get_running_loop())
        seq = Sequence(
            prompt_ids=prompt_ids,
            max_new_tokens=min(request.max_tokens, limit - len(prompt_ids)),
            sampling=sampling_params(request),
            stop=request.stop,
            eos_ids=engine.eos_ids,
            ignore_eos=request.ignore_eos,
            min_tokens=int(request.extra.get("min_tokens", 0) or 0),
            decode=engine.decode,
            sink=sink,
        )
        try:
            engine.submit(seq)
        except QueueFull:
            yield Failed(type="overloaded", status=503, retryable=True,
                         message=f"backend {self.name!r}: engine queue is full")
            return
        except RuntimeError as exc:
            yield Failed(type="engine_error", status=503, retryable=True, message=str(exc))
            return
        try:
            while True:
                event = await sink.get()
                yield event
                if isinstance(event, Completed | Failed):
                    return
        finally:
            if not seq.finished:
                seq.cancelled = True
                engine.cancelled(seq)


def sampling_params(request: GenerationRequest) -> SamplingParams:
    top_k = request.extra.get("top_k")
    return SamplingParams(
        temperature=1.0 if request.temperature is None else request.temperature,
        top_p=1.0 if request.top_p is None else request.top_p,
        top_k=int(top_k) if top_k is not None and top_k > 0 else 0,
        seed=request.seed,
    )
