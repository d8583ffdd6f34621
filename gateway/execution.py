"""One client request's upstream attempts: route, submit, wait for the first token, then relay.

A request moves to another attempt only while nothing reached the client: before the first token, on a
retryable failure or a full queue. After the first token, any failure becomes one error event.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator

from backends.events import TERMINAL, Completed, Delta, Event, Failed, Started
from backends.request import GenerationRequest
from dispatch.contract import AdmissionRefused, Dispatcher, DispatchUnavailable, Ticket
from dispatch.job import Job
from gateway.config.schema import LimitsConfig
from gateway.errors import APIError
from observability.recorder import RequestRecorder
from routing.router import Router

First = Delta | Completed


class Execution:
    def __init__(
        self,
        request: GenerationRequest,
        *,
        router: Router,
        dispatcher: Dispatcher,
        limits: LimitsConfig,
        recorder: RequestRecorder,
        engines: dict[str, str],
        max_n: dict[str, int],
        priority: int = 0,
    ) -> None:
        self.request = request
        self._router = router
        self._dispatcher = dispatcher
        self._limits = limits
        self._recorder = recorder
        self._engines = engines
        self._max_n = max_n
        self._priority = priority
        self._ticket: Ticket | None = None
        self._events: AsyncIterator[Event] | None = None
        self.backend = ""
        self.finished = False

    async def start(self) -> First:
        """Run attempts until one yields its first token (or completes). Raises APIError otherwise."""
        loop = asyncio.get_running_loop()
        ttft_deadline = loop.time() + self._limits.ttft_timeout_s
        deadline_ns = self._recorder.received_ns + int(self._limits.request_timeout_s * 1e9)
        exclude: set[str] = set()
        refused: AdmissionRefused | None = None
        failure: Failed | None = None
        attempt = 0
        while attempt < self._limits.max_attempts:
            decision = self._router.pick(self.request.model, frozenset(exclude))
            if decision is None or (refused is not None and decision.backend in exclude):
                break
            backend = decision.backend
            if self.request.n > self._max_n.get(backend, 1):
                raise APIError(400, f"n={self.request.n} is more than backend {backend!r} of this model serves "
                                    f"(at most {self._max_n.get(backend, 1)}).", param="n")
            producer = self._recorder.producer_span(backend)
            job = Job(id=uuid.uuid4().hex, model=self.request.model, backend=backend, request=self.request,
                      priority=self._priority, deadline_ns=deadline_ns,
                      traceparent=self._recorder.traceparent(producer), attempt=attempt + 1,
                      enqueued_ns=time.time_ns())
            try:
                ticket = await self._dispatcher.submit(job)
            except AdmissionRefused as exc:
                refused = exc
                exclude.add(backend)
                continue
            except DispatchUnavailable as exc:
                raise APIError(503, f"The request could not be queued: {exc}", code="dispatch_unavailable") \
                    from None
            finally:
                producer.end()
            attempt += 1
            self._recorder.routed(backend, self._engines.get(backend, "unknown"), decision.arm, attempt,
                                  {"reason": decision.reason, "candidates": ",".join(decision.candidates)})
            self._recorder.enqueued(job.enqueued_ns)
            self._ticket, self._events, self.backend = ticket, ticket.events().__aiter__(), backend
            first = await self._first(job, ttft_deadline)
            if not isinstance(first, Failed):
                return first
            failure = first
            if first.status >= 500:
                self._router.health.record_failure(backend)
            if not first.retryable:
                self.finished = True
                raise APIError.from_failed(first)
            exclude.add(backend)
        self.finished = True
        if failure is not None:
            raise APIError.from_failed(failure)
        if refused is not None:
            raise APIError(429, f"Too many requests queued for model {self.request.model!r}; retry after "
                                f"{refused.retry_after:g}s.", code="rate_limit_exceeded",
                           headers={"Retry-After": str(max(1, round(refused.retry_after)))})
        raise APIError(503, f"No backend of model {self.request.model!r} is available right now.",
                       code="no_backend_available")

    async def _first(self, job: Job, ttft_deadline: float) -> Delta | Completed | Failed:
        assert self._events is not None
        while True:
            try:
                async with asyncio.timeout_at(ttft_deadline):
                    event = await anext(self._events)
            except TimeoutError:
                await self.cancel()
                raise APIError(504, f"No first token within {self._limits.ttft_timeout_s:g}s.", type="timeout",
                               code="ttft_timeout") from None
            if isinstance(event, Started):
                self._recorder.started(event, job.enqueued_ns)
            elif isinstance(event, Delta) and not (event.tokens or event.text):
                continue
            else:
                if isinstance(event, Completed):
                    self._complete(event)
                return event

    async def rest(self) -> AsyncIterator[Event]:
        """Events after the first, ending with exactly one terminal event (a timeout becomes Failed)."""
        assert self._events is not None
        while not self.finished:
            try:
                # A timeout per event, not wait_for: wait_for wraps each anext() in a new Task (one per token).
                # The context closes before the yield, so it never fires while the consumer writes.
                async with asyncio.timeout(self._limits.idle_timeout_s):
                    event = await anext(self._events)
            except TimeoutError:
                await self.cancel()
                event = Failed(type="timeout", code="idle_timeout", status=504,
                               message=f"The backend sent nothing for {self._limits.idle_timeout_s:g}s.")
            except StopAsyncIteration:
                event = Failed(type="server_error", status=502, message="The job's event stream ended early.")
            if isinstance(event, Completed):
                self._complete(event)
            elif isinstance(event, Failed):
                self.finished = True
                if event.status >= 500:
                    self._router.health.record_failure(self.backend)
            yield event
            if isinstance(event, TERMINAL):
                return

    def _complete(self, event: Completed) -> None:
        self.finished = True
        self._router.health.record_success(self.backend)

    async def cancel(self) -> None:
        self.finished = True
        if self._ticket is not None:
            await self._ticket.cancel()
