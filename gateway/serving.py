"""The completion service: body -> validated request -> execution -> OpenAI JSON or SSE."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable

from litestar import Response

from backends.events import Completed, Delta, Event, Failed
from backends.request import GenerationRequest
from gateway.disconnect import ClientWatch
from gateway.edge import add_finisher
from gateway.errors import APIError
from gateway.execution import Execution
from gateway.protocol import ChatCompletionRequest, CompletionRequest
from gateway.render import Renderer
from gateway.runtime import Runtime
from gateway.shadow import ShadowRunner
from gateway.sse import EventStream, Write
from gateway.tenants.allowance import Allowance
from gateway.tenants.records import KeyRecord
from gateway.tenants.service import Tenancy
from gateway.types import AnyRequest
from gateway.validation import decode, model_not_found, normalize_chat, normalize_completion
from observability.propagation import extract
from observability.recorder import RequestRecorder
from routing.router import RouteContext

JSON = "application/json"
SSE_HEADERS = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}
PIN_HEADER = "x-lockgate-pin-backend"
ADMIN_KEY_HEADER = "x-lockgate-admin-key"


class CompletionService:
    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime
        self.shadows = ShadowRunner(runtime)

    def parse(self, body: bytes, chat: bool, request_id: str) -> tuple[GenerationRequest, bool]:
        """Validate a body; return the normalized request and whether usage goes in the stream."""
        cfg = self.runtime.config
        req: ChatCompletionRequest | CompletionRequest = (
            decode(body, ChatCompletionRequest) if chat else decode(body, CompletionRequest))
        model = cfg.models.get(req.model)
        if model is None:
            raise model_not_found(req.model)
        if isinstance(req, ChatCompletionRequest):
            normalized = normalize_chat(req, request_id, model, cfg.limits)
        else:
            normalized = normalize_completion(req, request_id, model, cfg.limits)
        include_usage = bool(req.stream and req.stream_options and req.stream_options.include_usage)
        return normalized, include_usage

    def route_context(self, request: AnyRequest, gen: GenerationRequest,
                      principal: KeyRecord | None) -> RouteContext:
        model = self.runtime.config.models[gen.model]
        session = request.headers.get(model.experiment.session_header)
        sources = {"user": gen.user, "session": session, "api_key": principal.id if principal else None}
        sticky = next((f"{s}:{sources[s]}" for s in model.experiment.sticky_keys if sources[s]), None)
        affinity = None
        if model.affinity == "session":
            affinity = session or gen.user
        elif model.affinity == "prefix":
            affinity = gen.prompt_text()[: model.affinity_prefix_chars]
        pinned = request.headers.get(PIN_HEADER)
        if pinned is not None:
            self.runtime.auth.authenticate_admin(request.headers.get(ADMIN_KEY_HEADER))
            if pinned not in self.runtime.router.pools[gen.model].members():
                raise APIError(400, f"Backend {pinned!r} does not serve model {gen.model!r}.", param=PIN_HEADER)
        return RouteContext(sticky_key=sticky, affinity_key=affinity, pinned=pinned)

    async def handle(self, request: AnyRequest, body: bytes, chat: bool, request_id: str,
                     principal: KeyRecord | None = None) -> Response[bytes]:
        gen_request, include_usage = self.parse(body, chat, request_id)
        context = self.route_context(request, gen_request, principal)
        rt = self.runtime
        recorder = RequestRecorder(rt.telemetry, gen_request, extract(dict(request.headers)))
        allowance = await rt.tenancy.admit(principal, gen_request, recorder)
        execution = Execution(gen_request, router=rt.router, dispatcher=rt.dispatcher, limits=rt.config.limits,
                              recorder=recorder, engines=rt.engines, max_n=rt.max_n, budget=rt.budget,
                              context=context, priority=principal.priority if principal else 0,
                              tenant=principal.id if principal else "")
        renderer = Renderer(chat, gen_request.model, gen_request.n, include_usage)
        headers = {"x-lockgate-trace-id": recorder.trace_id} if recorder.trace_id else {}
        if allowance is not None:
            headers.update(allowance.headers)
        # Shadows start with the primary, so both engines get the request at the same moment.
        pair_ids = [] if context.pinned else self.shadows.maybe_start(gen_request, recorder.span)

        def record() -> None:
            timing = execution.timing()
            if execution.decision is not None:
                rt.experiments.record_arm(gen_request.model, execution.decision.arm, timing)
            for pair_id in pair_ids:
                rt.experiments.record_side(pair_id, "primary", timing)
            settling = allowance.settle(timing) if allowance is not None else None
            if settling is not None:
                rt.tenancy.spawn(settling)

        # From here a client that hangs up cancels this task (and with it the job): see gateway.disconnect.
        watch = ClientWatch.start(request.scope, request.receive)
        ending = _Ending(execution, recorder, record, watch)
        add_finisher(request.scope, ending)
        try:
            first = await execution.start()
        except APIError as err:
            recorder.failed(Failed(type=err.type, message=err.message, status=err.status, code=err.code))
            await ending()
            if allowance is not None:
                err.headers = {**allowance.headers, **err.headers}
            raise
        except BaseException:
            await ending()
            raise
        assert execution.decision is not None
        headers["x-lockgate-backend"] = execution.backend
        headers["x-lockgate-route"] = execution.decision.header(execution.attempt)
        # Responses start at the first token, so queue wait and TTFT are known for streams too.
        if recorder.queue_wait is not None:
            headers["x-lockgate-queue-ms"] = f"{recorder.queue_wait * 1000:.2f}"
        if execution.first_arrival is not None:
            headers["x-lockgate-ttft-ms"] = f"{(execution.first_arrival - recorder.received) * 1000:.2f}"
            if isinstance(first, Delta):
                for name, ms in recorder.first_token_path(first, execution.first_arrival).items():
                    headers[f"x-lockgate-{name}-ms"] = f"{ms:.2f}"
        if gen_request.stream:
            sse = _SSEBody(first, execution, renderer, recorder, ending, allowance, rt.tenancy)
            return EventStream(sse, headers={**SSE_HEADERS, **headers})
        try:
            body_out = await _collect(first, execution, renderer, recorder)
        finally:
            await ending()
        return Response(body_out, media_type=JSON, headers=headers)


class _Ending:
    """Ends a request exactly once, however it ends: an unfinished execution is cancelled (its job too) and
    the outcome is recorded. Called by the response's own code and, as a finisher, by the edge middleware for
    streams the framework abandoned mid-write."""

    def __init__(self, execution: Execution, recorder: RequestRecorder, record: Callable[[], None],
                 watch: ClientWatch) -> None:
        self._execution = execution
        self._watch = watch
        self._recorder = recorder
        self._record = record
        self._done = False

    async def __call__(self) -> None:
        if self._done:
            return
        self._done = True
        self._watch.stop()
        if not self._execution.finished:
            await self._execution.cancel()
            self._recorder.cancelled()
        self._record()


async def _collect(first: Delta | Completed, execution: Execution, renderer: Renderer,
                   recorder: RequestRecorder) -> bytes:
    texts = [""] * execution.request.n

    async def all_events() -> AsyncIterator[Event]:
        yield first
        if not isinstance(first, Completed):
            async for e in execution.rest():
                yield e

    async for event in all_events():
        if isinstance(event, Delta):
            texts[event.index] += event.text
            recorder.chunk_sent(event)
        elif isinstance(event, Completed):
            recorder.completed(event, renderer.id)
            return renderer.body(texts, event)
        elif isinstance(event, Failed):
            recorder.failed(event)
            raise APIError.from_failed(event)
    raise APIError(502, "The job ended without a result.")


class _SSEBody:
    """A stream's body: everything that is ready goes out in one write (the role chunk with the first token;
    a burst of deltas; the last delta with the closing chunks and ``[DONE]``, which also ends the body).
    Every pass waits for the next event, so a client that hangs up is noticed between writes.

    With a metered key, each delta is charged to the key's lease before it is written (a Redis round trip only
    when the lease is spent); when the budget runs out, the delta in hand still goes out, then one error event
    and ``[DONE]``, and the job is cancelled: a stream overruns its key's budget by at most one chunk."""

    def __init__(self, first: Delta | Completed, execution: Execution, renderer: Renderer,
                 recorder: RequestRecorder, ending: _Ending, allowance: Allowance | None = None,
                 tenancy: Tenancy | None = None) -> None:
        self._first = first
        self._execution = execution
        self._renderer = renderer
        self._recorder = recorder
        self._ending = ending
        self._allowance = allowance
        self._tenancy = tenancy

    async def _exhausted(self, delta: Delta) -> bool:
        allowance = self._allowance
        return allowance is not None and not allowance.take(delta.tokens) and not await allowance.extend(
            delta.tokens)

    async def __call__(self, write: Write) -> None:
        renderer, recorder = self._renderer, self._recorder
        try:
            parts = [renderer.opening()]
            batch: list[Event] = [self._first]
            while True:
                sent: list[Delta] = []
                terminal: Completed | Failed | None = None
                cut: APIError | None = None
                for event in batch:
                    if isinstance(event, Delta):
                        exhausted = await self._exhausted(event)
                        if event.text:
                            parts.append(renderer.delta(event))
                        sent.append(event)
                        if exhausted and self._allowance is not None and self._tenancy is not None:
                            cut = self._tenancy.stream_cut(self._allowance)
                            parts.append(renderer.error(cut))
                            break
                    elif isinstance(event, Completed):
                        terminal = event
                        parts.append(renderer.closing(event))
                    elif isinstance(event, Failed):
                        terminal = event
                        parts.append(renderer.error(APIError.from_failed(event)))
                if cut is not None:
                    await self._execution.cancel()
                data = b"".join(parts)
                ends = terminal is not None or cut is not None
                if data or ends:
                    await write(data, ends)
                for delta in sent:
                    recorder.chunk_sent(delta)
                if isinstance(terminal, Completed):
                    recorder.completed(terminal, renderer.id)
                elif isinstance(terminal, Failed):
                    recorder.failed(terminal)
                elif cut is not None:
                    recorder.failed(Failed(type=cut.type, message=cut.message, status=cut.status, code=cut.code))
                if ends or self._execution.finished:
                    return
                parts = []
                batch = await self._execution.next_events()
        finally:
            await self._ending()
