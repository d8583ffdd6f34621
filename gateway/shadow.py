"""Shadow pairs: a sampled request is also sent, unchanged, to the model's shadow backends.

The client only ever sees the primary's answer. The shadow copy runs in the background with the same
parameters and streaming mode; both sides are timed at the gateway and recorded as one pair, and the
shadow's span links to the primary's so the two traces can be opened side by side.
"""

from __future__ import annotations

import asyncio
import logging
import random

import msgspec
from opentelemetry.trace import Link, Span

from backends.events import Completed, Failed
from backends.request import GenerationRequest
from gateway.errors import APIError
from gateway.execution import Execution
from gateway.runtime import Runtime
from observability import semconv as sc
from observability.recorder import RequestRecorder
from routing.router import RouteContext

log = logging.getLogger("lockgate.shadow")


class ShadowRunner:
    def __init__(self, runtime: Runtime, rng: random.Random | None = None) -> None:
        self._rt = runtime
        self._rng = rng or random.Random()

    def maybe_start(self, request: GenerationRequest, primary: Span) -> list[str]:
        """Start the shadow copies of a sampled request; return the pair ids (empty when not sampled)."""
        model = self._rt.config.models[request.model]
        fraction = model.experiment.shadow_fraction
        if fraction <= 0 or self._rng.random() >= fraction:
            return []
        pair_ids = []
        for backend in self._rt.router.shadows(request.model):
            pair_id = self._rt.experiments.open_pair(request.model)
            pair_ids.append(pair_id)
            primary.set_attribute(sc.PAIR_ID, pair_id)
            task = asyncio.create_task(self._run(request, backend, pair_id, primary), name=f"shadow-{pair_id}")
            self._rt.shadows.add(task)
            task.add_done_callback(self._rt.shadows.discard)
        return pair_ids

    async def _run(self, request: GenerationRequest, backend: str, pair_id: str, primary: Span) -> None:
        rt = self._rt
        copy = msgspec.structs.replace(request, request_id=f"{request.request_id}-shadow-{backend}")
        recorder = RequestRecorder(rt.telemetry, copy, None, links=[Link(primary.get_span_context())],
                                   shadow_of=pair_id)
        primary.add_event("shadow_started", {sc.PAIR_ID: pair_id, sc.BACKEND: backend,
                                             "lockgate.shadow.trace_id": recorder.trace_id or ""})
        execution = Execution(copy, router=rt.router, dispatcher=rt.dispatcher,
                              limits=msgspec.structs.replace(rt.config.limits, max_attempts=1),
                              recorder=recorder, engines=rt.engines, max_n=rt.max_n, budget=rt.budget,
                              context=RouteContext(pinned=backend))
        try:
            first = await execution.start()
            terminal = first if isinstance(first, Completed) else None
            if terminal is None:
                async for event in execution.rest():
                    if isinstance(event, Completed):
                        terminal = event
            if terminal is not None:
                recorder.completed(terminal, f"shadow-{pair_id}")
            rt.telemetry.instruments.shadow_requests.add(1, {sc.BACKEND: backend, sc.OUTCOME: "ok"})
        except APIError as err:
            recorder.failed(Failed(type=err.type, message=err.message, status=err.status, code=err.code))
            rt.telemetry.instruments.shadow_requests.add(1, {sc.BACKEND: backend, sc.OUTCOME: err.code or err.type})
        except asyncio.CancelledError:
            await execution.cancel()
            recorder.cancelled()
            rt.experiments.abandon_pair(pair_id)
            raise
        except Exception:  # a shadow must never hurt the gateway; it is recorded as failed
            log.exception("shadow request %s to %s failed", pair_id, backend)
        rt.experiments.record_side(pair_id, "shadow", execution.timing())
