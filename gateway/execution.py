"""One client request's upstream attempts: route, submit, wait for the first token, then relay.

A request moves to another attempt only while nothing reached the client: before the first token, on a
retryable failure or a full queue, within ``limits.max_attempts`` and the fleet-wide retry budget. After the
first token, any failure becomes one error event.
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
from gateway.watchdog import Watchdog
from observability import semconv as sc
from observability.recorder import RequestRecorder
from routing.budget import RetryBudget
from routing.experiments import Timing
from routing.router import RouteContext, RouteDecision, Router

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
        budget: RetryBudget,
        context: RouteContext | None = None,
        priority: int = 0,
        tenant: str = "",
    ) -> None:
        self.request = request
        self._router = router
        self._dispatcher = dispatcher
        self._limits = limits
        self._recorder = recorder
        self._engines = engines
        self._max_n = max_n
        self._budget = budget
        self._context = context or RouteContext()
        self._priority = priority
        self._tenant = tenant
        self._ticket: Ticket | None = None
        self._events: AsyncIterator[Event] | None = None
        self._holding: str | None = None
        self.backend = ""
        self.decision: RouteDecision | None = None
        self.attempt = 0
        self.finished = False
        # Timing at event arrival (perf_counter), the same measurement point for primary and shadow requests.
        self._t0 = time.perf_counter()
        self._t_first: float | None = None
        self._t_last: float | None = None
        self._tokens = 0
        self._itl_tokens = 0
        self._terminal: Completed | Failed | None = None
        self._idle: Watchdog | None = None

    async def start(self) -> First:
        """Run attempts until one yields its first token (or completes). Raises APIError otherwise."""
        ttft_deadline = asyncio.get_running_loop().time() + self._limits.ttft_timeout_s
        deadline_ns = self._recorder.received_ns + int(self._limits.request_timeout_s * 1e9)
        exclude: set[str] = set()
        refused: AdmissionRefused | None = None
        failure: Failed | None = None
        self._budget.record_request()
        try:
            while self.attempt < self._limits.max_attempts:
                if self.attempt:
                    allowed = self._budget.try_retry()
                    self._recorder.retry(allowed)
                    if not allowed:
                        break
                decision = self._router.pick(self.request.model, self._context, frozenset(exclude))
                if decision is None or (refused is not None and decision.backend in exclude):
                    break
                first = await self._attempt(decision, deadline_ns, ttft_deadline)
                if isinstance(first, AdmissionRefused):
                    refused = first
                    exclude.add(decision.backend)
                    continue
                if not isinstance(first, Failed):
                    return first
                failure = first
                if not first.retryable:
                    raise APIError.from_failed(first)
                exclude.add(decision.backend)
        except BaseException:
            self._end()
            if self._ticket is not None:
                # Cancelled (the client went away before its first token) or failed: the attempt in flight must
                # not keep running on a worker. A ticket that already ended ignores this.
                await self._ticket.cancel()
            raise
        self._end()
        if failure is not None:
            raise APIError.from_failed(failure)
        if refused is not None:
            raise APIError(429, f"Too many requests queued for model {self.request.model!r}; retry after "
                                f"{refused.retry_after:g}s.", code="rate_limit_exceeded",
                           headers={"Retry-After": str(max(1, round(refused.retry_after)))})
        raise APIError(503, f"No backend of model {self.request.model!r} is available right now.",
                       code="no_backend_available")

    async def _attempt(self, decision: RouteDecision, deadline_ns: int,
                       ttft_deadline: float) -> First | Failed | AdmissionRefused:
        backend = decision.backend
        if self.request.n > self._max_n.get(backend, 1):
            raise APIError(400, f"n={self.request.n} is more than backend {backend!r} of this model serves "
                                f"(at most {self._max_n.get(backend, 1)}).", param="n")
        producer = self._recorder.producer_span(backend)
        job = Job(id=uuid.uuid4().hex, model=self.request.model, backend=backend, request=self.request,
                  priority=self._priority, deadline_ns=deadline_ns, traceparent=self._recorder.traceparent(producer),
                  attempt=self.attempt + 1, enqueued_ns=time.time_ns(), tenant=self._tenant)
        try:
            ticket = await self._dispatcher.submit(job)
            producer.set_attribute(sc.DISPATCH_WAKE, ticket.wake)
        except AdmissionRefused as exc:
            return exc
        except DispatchUnavailable as exc:
            raise APIError(503, f"The request could not be queued: {exc}", code="dispatch_unavailable") from None
        finally:
            producer.end()
        self.attempt += 1
        self._hold(backend)
        self.decision = decision
        self._recorder.routed(backend, self._engines.get(backend, "unknown"), decision.arm, self.attempt,
                              {"reason": decision.reason,
                               "candidates": ",".join(f"{b}:{s:.2f}" for b, s in decision.candidates)})
        self._recorder.enqueued(job.enqueued_ns)
        self._ticket, self._events, self.backend = ticket, ticket.events().__aiter__(), backend
        first = await self._first(job, ttft_deadline)
        if isinstance(first, Failed):
            self._outcome(first)
            self._release()
        return first

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
            elif isinstance(event, Failed):
                return event  # the attempt's outcome; start() decides whether another attempt follows
            else:
                self._arrived(event)
                return event

    async def rest(self) -> AsyncIterator[Event]:
        """Events after the first, ending with exactly one terminal event (a timeout becomes Failed)."""
        while not self.finished:
            for event in await self.next_events():
                yield event

    async def next_events(self) -> list[Event]:
        """The next event and every event already waiting behind it (the stream writes them at once), ending
        with the terminal event if it is among them. Waits at most ``idle_timeout_s`` for the first one."""
        assert self._events is not None
        assert self._ticket is not None
        if self._idle is None:
            self._idle = Watchdog(self._limits.idle_timeout_s, asyncio.get_running_loop())
        self._idle.begin()
        try:
            event = await anext(self._events)
        except asyncio.CancelledError:
            self._idle.end()
            if not self._idle.expired():
                raise
            await self.cancel()
            event = Failed(type="timeout", code="idle_timeout", status=504,
                           message=f"The backend sent nothing for {self._limits.idle_timeout_s:g}s.")
        except StopAsyncIteration:
            event = Failed(type="server_error", status=502, message="The job's event stream ended early.")
        finally:
            self._idle.end()
        self._arrived(event)
        batch = [event]
        if not isinstance(event, TERMINAL):
            for more in self._ticket.ready():
                self._arrived(more)
                batch.append(more)
        return batch

    def _arrived(self, event: Event) -> None:
        now = time.perf_counter()
        if isinstance(event, Delta) and event.tokens:
            if self._t_first is None:
                self._t_first = now
            else:
                self._itl_tokens += event.tokens
            self._t_last = now
            self._tokens += event.tokens
        elif isinstance(event, Completed | Failed):
            self._terminal = event
            self._outcome(event)
            self._end()

    def _outcome(self, event: Completed | Failed) -> None:
        if isinstance(event, Completed):
            self._router.health.record_success(self.backend)
        elif event.status >= 500:
            self._router.health.record_failure(self.backend)

    def _hold(self, backend: str) -> None:
        self._router.load.acquire(backend)
        self._holding = backend

    def _release(self) -> None:
        if self._holding is not None:
            self._router.load.release(self._holding)
            self._holding = None

    def _end(self) -> None:
        self.finished = True
        self._release()
        if self._idle is not None:
            self._idle.close()

    async def cancel(self) -> None:
        self._end()
        if self._ticket is not None:
            await self._ticket.cancel()

    @property
    def first_arrival(self) -> float | None:
        """perf_counter time when the first token reached the gateway."""
        return self._t_first

    def timing(self) -> Timing:
        """This request as the experiment readout sees it (event arrival times at the gateway)."""
        t = self._terminal
        ok = isinstance(t, Completed)
        ttft = self._t_first - self._t0 if self._t_first is not None else None
        e2e = (self._t_last if self._t_last is not None else time.perf_counter()) - self._t0
        n_out = t.completion_tokens if isinstance(t, Completed) else self._tokens
        tpot = itl = None
        if self._t_first is not None and self._t_last is not None and n_out >= 2:
            tpot = (self._t_last - self._t_first) / (n_out - 1)
        if self._itl_tokens and self._t_first is not None and self._t_last is not None:
            itl = (self._t_last - self._t_first) / self._itl_tokens
        error = None if ok else (t.code or t.type if isinstance(t, Failed) else "cancelled")
        return Timing(backend=self.backend, ok=ok, error=error, ttft=ttft, tpot=tpot, itl=itl, e2e=e2e,
                      prompt_tokens=t.prompt_tokens if isinstance(t, Completed) else 0, completion_tokens=n_out)
