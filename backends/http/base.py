"""``HttpBackend``: the Backend protocol over an engine's HTTP server. Subclasses say how to build the request,
how to translate its chunks, and how to read health and load; this class owns the stream loop, its timeouts,
the CLIENT span, cancellation and error mapping, identically for every engine.

Guarantees (each pinned by a test):
- one ``Started``, then ``Delta``s stamped with the arrival time of their chunk, then exactly one terminal event;
- an engine error before any token is a ``Failed`` mapped to an OpenAI status; overload, 5xx and connection
  refused are ``retryable`` (another backend may take the job);
- after the first token, any failure (error chunk, cut stream, idle timeout) is one non-retryable ``Failed``;
- cancelling the consuming task closes the HTTP stream, which makes vLLM and SGLang abort the request.
"""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncGenerator
from contextlib import aclosing
from typing import Any

import httpx
import msgspec
from opentelemetry import trace
from opentelemetry.trace import Span, Status, StatusCode, Tracer

from backends.events import Completed, Delta, Event, Failed, Started
from backends.http.client import build_client, build_transport, engine_timeout
from backends.http.errors import connection_failure, failure_from_response, failure_in_stream, stream_cut
from backends.http.keepalive import drain
from backends.http.lean import LeanPool, LeanResponse
from backends.http.options import HttpOptions
from backends.http.poller import StatusPoller
from backends.http.sse import aiter_sse
from backends.http.timing import StreamTimeout, timed
from backends.http.tracing import engine_call
from backends.http.translate import EngineCall, Translator
from backends.protocol import Health, HealthState, Load
from backends.request import GenerationRequest
from observability import semconv as sc

log = logging.getLogger("lockgate.backends.http")


class HttpBackend:
    engine = "unknown"

    def __init__(
        self,
        name: str,
        options: HttpOptions,
        *,
        transport: httpx.AsyncBaseTransport | None = None,
        tracer: Tracer | None = None,
    ) -> None:
        self.name = name
        self.options = options
        self.max_concurrency = options.max_concurrency
        self.max_n = options.max_n
        self._transport = transport
        self._tracer = tracer or trace.get_tracer("lockgate.backends")
        self._client: httpx.AsyncClient | None = None
        self._timeout = engine_timeout(options).as_dict()
        self._url_prefix = options.url.rstrip("/")
        self._urls: dict[str, httpx.URL] = {}
        # An httpx transport handed in (tests' MockTransport, a benchmark's own) carries every request.
        self._lean = LeanPool(options) if options.client == "lean" and transport is None else None
        self._poller = StatusPoller(self.probe_health, self.probe_load, interval_s=options.poll_interval_s,
                                    timeout_s=options.probe_timeout_s)

    # ---- what each engine defines --------------------------------------------------------------------

    def build_call(self, request: GenerationRequest) -> EngineCall:
        raise NotImplementedError

    def translator(self, request: GenerationRequest) -> Translator:
        raise NotImplementedError

    async def probe_health(self) -> Health:
        raise NotImplementedError

    async def probe_load(self) -> Load | None:
        return None

    # ---- lifecycle -----------------------------------------------------------------------------------

    def use_tracer(self, tracer: Tracer) -> None:
        """Called by the runtime so CLIENT spans join its tracer provider (never a global one)."""
        self._tracer = tracer

    @property
    def client(self) -> httpx.AsyncClient:
        if self._client is None:
            self._client = build_client(self.options, self.transport)
        return self._client

    @property
    def transport(self) -> httpx.AsyncBaseTransport:
        if self._transport is None:
            self._transport = build_transport(self.options)
        return self._transport

    async def start(self) -> None:
        await self._poller.start()

    async def close(self) -> None:
        await self._poller.close()
        if self._lean is not None:
            await self._lean.aclose()
        if self._client is not None:
            await self._client.aclose()
            self._client = None

    async def health(self) -> Health:
        return self._poller.health

    async def load(self) -> Load | None:
        return self._poller.load

    def model_name(self, request: GenerationRequest) -> str:
        return self.options.model or request.model

    # ---- probes shared by the engines ----------------------------------------------------------------

    async def get(self, path: str) -> httpx.Response:
        return await self.client.get(path, timeout=self.options.probe_timeout_s)

    async def http_health(self, path: str, *, starting_on_503: bool = False) -> Health:
        try:
            resp = await self.get(path)
        except httpx.ConnectError:
            return Health(HealthState.DOWN, f"{path}: connection refused (engine starting or restarting?)")
        except httpx.TransportError as exc:
            return Health(HealthState.DOWN, f"{path}: {type(exc).__name__}")
        if resp.status_code == 200:
            return Health(HealthState.OK)
        state = HealthState.STARTING if starting_on_503 and resp.status_code == 503 else HealthState.DOWN
        return Health(state, f"{path} answered {resp.status_code}: {resp.text[:200]}")

    # ---- the stream loop -----------------------------------------------------------------------------

    async def generate(self, request: GenerationRequest) -> AsyncGenerator[Event, None]:
        yield Started(backend=self.name, engine=self.engine, t_ns=time.time_ns())
        call = self.build_call(request)
        translator = self.translator(request)
        url = self._urls.get(call.path) or self._url(call.path)
        with engine_call(self._tracer, url, self.engine, self.options.trace_propagation) as (span, trace_headers):
            span.set_attribute(sc.ENGINE_CLIENT, "httpx" if self._lean is None else "lean")
            terminal: Event | None = None
            try:
                # aclosing: if our consumer stops at a yield, the engine stream closes now, not at GC.
                async with aclosing(self._stream(call, translator, url, trace_headers, span)) as events:
                    async for event in events:
                        if isinstance(event, Completed | Failed):
                            terminal = event
                        yield event
            finally:
                if isinstance(terminal, Failed):
                    span.set_status(Status(StatusCode.ERROR, terminal.message))
                    span.set_attribute(sc.ERROR_TYPE, terminal.code or terminal.type)
                elif terminal is None:
                    span.set_attribute(sc.ERROR_TYPE, "cancelled")

    def _url(self, path: str) -> httpx.URL:
        # The configured URL's path is a prefix, as httpx's base_url makes it (not an RFC join, which drops it).
        url = self._urls[path] = httpx.URL(self._url_prefix + path)
        return url

    async def _send(self, url: httpx.URL, path: str, headers: dict[str, str],
                    body: bytes) -> httpx.Response | LeanResponse:
        if self._lean is not None:
            return await self._lean.send(path, headers, body)
        # Straight to the pooled transport, not through httpx.AsyncClient: its auth, redirect, cookie and hook
        # layers do nothing for an engine call and cost ~0.4 ms of the time to first token (docs/performance.md).
        request = httpx.Request("POST", url, content=body, headers=headers, extensions={"timeout": self._timeout})
        resp = await self.transport.handle_async_request(request)
        resp.request = request
        return resp

    async def _stream(self, call: EngineCall, translator: Translator, url: httpx.URL,
                      trace_headers: dict[str, str], span: Span) -> AsyncGenerator[Event, None]:
        headers = {**self.options.headers, **call.headers, **trace_headers, "accept": "text/event-stream",
                   "content-type": "application/json"}
        try:
            resp = await self._send(url, call.path, headers, msgspec.json.encode(call.body))
            head_ns = time.time_ns()
            connect_ns = -1
            try:
                span.set_attribute("http.response.status_code", resp.status_code)
                if isinstance(resp, LeanResponse):
                    connect_ns = resp.connect_ns
                    span.set_attribute(sc.CONNECTION_NEW, connect_ns > 0)
                    if connect_ns:
                        span.set_attribute(sc.CONNECT_TIME, connect_ns / 1e9)
                    if resp.retried:
                        span.set_attribute(sc.CONNECTION_RETRIED, True)
                if resp.status_code != 200:
                    yield failure_from_response(resp.status_code, await resp.aread(),
                                                prompt_param=call.prompt_param)
                    return
                saw_done = False
                completed = False
                chunks = timed(resp.aiter_bytes(), ttft_s=self.options.ttft_timeout_s,
                               idle_s=self.options.idle_timeout_s, flowing=lambda: translator.tokens > 0)
                try:
                    async for sse in aiter_sse(chunks):
                        if sse.data == "[DONE]":
                            saw_done = True
                            break
                        try:
                            obj: Any = msgspec.json.decode(sse.data)
                        except msgspec.DecodeError:
                            log.warning("%s: skipping a chunk that is not JSON: %.200r", self.name, sse.data)
                            continue
                        failure = failure_in_stream(obj, after_tokens=translator.tokens > 0,
                                                    prompt_param=call.prompt_param)
                        if failure is not None:
                            yield failure
                            return
                        for event in translator.feed(obj, sse.t_ns):
                            completed = isinstance(event, Completed)
                            if head_ns and isinstance(event, Delta):
                                # The first delta carries the call's own timing to the gateway's split.
                                event = msgspec.structs.replace(event, head_ns=head_ns, connect_ns=connect_ns)
                                head_ns = 0
                            yield event
                            if isinstance(event, Completed | Failed):
                                return
                    last = translator.finish(saw_done)
                    completed = isinstance(last, Completed)
                    yield last
                finally:
                    # Runs after our consumer has the terminal event (it closes us once that is out), so the
                    # read costs the request no latency: only a finished stream is worth keeping its connection.
                    if completed:
                        span.set_attribute(sc.CONNECTION_KEPT, await drain(chunks))
            finally:
                await resp.aclose()
        except StreamTimeout as exc:
            flowing = translator.tokens > 0
            yield Failed(type="timeout", code="engine_timeout", status=504, retryable=not flowing,
                         message=f"{exc} ({url})")
        except httpx.TransportError as exc:
            if translator.tokens > 0:
                yield stream_cut(str(url), after_tokens=True, why=f"the engine connection failed mid-stream "
                                                                  f"({type(exc).__name__})")
            else:
                yield connection_failure(exc, str(url))


def finish_reason(value: Any) -> str:
    """OpenAI's two finish reasons; engines add others (``eos``, ``abort``, tool calls) that end as ``stop``."""
    return "length" if value == "length" else "stop"

