"""Sends one streamed completion and records its timeline (``RequestRecord``).

Success needs HTTP 200, no error event, a ``finish_reason`` and ``[DONE]``: a stream whose only event is an
error is an error, and one that ends without a finish reason or ``[DONE]`` is incomplete; neither is success.
"""

from __future__ import annotations

import asyncio
from typing import Any

import msgspec

from loadtest.clock import RunClock
from loadtest.config import BenchSpec, Target
from loadtest.dataset import Prompt
from loadtest.record import RequestRecord
from loadtest.sse import SSEParser
from loadtest.tokens import TokenCounter
from loadtest.transport import ConnectError, Transport, TransportError

_decode = msgspec.json.Decoder(dict[str, Any]).decode
TRACE_HEADER = "x-lockgate-trace-id"
GATEWAY_HEADER_PREFIX = "x-lockgate-"


def request_body(spec: BenchSpec, target: Target, prompt: Prompt) -> dict[str, Any]:
    body: dict[str, Any] = {"model": target.model, "stream": True, "stream_options": {"include_usage": True}}
    if spec.endpoint == "chat":
        body["messages"] = [{"role": "user", "content": prompt.text}]
    else:
        body["prompt"] = prompt.text
    if prompt.output_tokens is not None:
        body["max_tokens"] = prompt.output_tokens
        if spec.ignore_eos:
            body["ignore_eos"] = True  # top-level extra field: vLLM, SGLang and lockgate read it there
    return body


def url_for(spec: BenchSpec, target: Target) -> str:
    path = "chat/completions" if spec.endpoint == "chat" else "completions"
    return target.base_url.rstrip("/") + "/" + path


def _text_of(choice: dict[str, Any]) -> str:
    delta = choice.get("delta")
    if isinstance(delta, dict):
        # Reasoning models stream thinking tokens apart from the answer; both are output tokens.
        return "".join(v for k in ("content", "reasoning_content", "reasoning")
                       if isinstance(v := delta.get(k), str))
    text = choice.get("text")
    return text if isinstance(text, str) else ""


def spread_tokens(estimates: list[int], total: int) -> list[int]:
    """Scale per-chunk estimates so they add up to ``total`` (largest remainders get the leftovers)."""
    est_sum = sum(estimates)
    if est_sum == total or not estimates:
        return estimates
    if est_sum == 0:
        estimates = [1] * len(estimates)
        est_sum = len(estimates)
    exact = [e * total / est_sum for e in estimates]
    out = [int(x) for x in exact]
    for i in sorted(range(len(exact)), key=lambda j: out[j] - exact[j])[: total - sum(out)]:
        out[i] += 1
    return out


class _Stream:
    """State of one SSE response while it is read."""

    def __init__(self, record: RequestRecord, counter: TokenCounter) -> None:
        self.r = record
        self.counter = counter
        self.done = False
        self.cumulative: list[int | None] = []

    def on_read(self, now: float, events: list[bytes]) -> None:
        text, cumulative = "", None
        for data in events:
            if data.strip() == b"[DONE]":
                self.done = True
                continue
            try:
                obj = _decode(data)
            except msgspec.DecodeError:
                self.r.error_type = self.r.error_type or "bad_event"
                continue
            if "error" in obj:
                err = obj["error"] if isinstance(obj["error"], dict) else {"message": str(obj["error"])}
                self.r.error_type = f"stream_error:{err.get('type') or 'unknown'}"
                self.r.error_message = str(err.get("message", ""))[:500]
                continue
            usage = obj.get("usage")
            if isinstance(usage, dict):
                if isinstance(usage.get("completion_tokens"), int):
                    self.r.n_out, self.r.n_out_source = usage["completion_tokens"], "usage"
                    cumulative = usage["completion_tokens"]
                if isinstance(usage.get("prompt_tokens"), int):
                    self.r.n_in, self.r.n_in_source = usage["prompt_tokens"], "usage"
            for choice in obj.get("choices") or ():
                text += _text_of(choice)
                if choice.get("finish_reason"):
                    self.r.finish_reason = choice["finish_reason"]
        if text:
            # Events that arrived in one read form one chunk: they reached the client at the same instant.
            if self.r.t_first is None:
                self.r.t_first = now
            self.r.t_last = now
            self.r.chunk_offsets.append(now - self.r.t_send)
            self.r.chunk_tokens.append(self.counter.count(text))
            self.cumulative.append(cumulative)

    def finish(self) -> None:
        r = self.r
        if r.n_out is None:
            r.n_out, r.n_out_source = sum(r.chunk_tokens), self.counter.source
        if self.cumulative and all(c is not None for c in self.cumulative):
            # Per-chunk usage (vLLM's continuous_usage_stats): exact tokens per chunk.
            cum = [c for c in self.cumulative if c is not None]
            r.chunk_tokens = [b - a for a, b in zip([0, *cum[:-1]], cum, strict=True)]
            r.chunk_tokens_source = "usage:continuous"
        else:
            r.chunk_tokens = spread_tokens(r.chunk_tokens, r.n_out)
            r.chunk_tokens_source = self.counter.source + ("+usage" if r.n_out_source == "usage" else "")
        if r.error_type is not None:
            r.outcome = "error"
        elif r.finish_reason is None or not self.done:
            r.outcome, r.error_type = "incomplete", "incomplete_stream"
            r.error_message = "stream ended without " + ("a finish_reason" if r.finish_reason is None else "[DONE]")
        else:
            r.outcome = "ok"


async def send(
    transport: Transport, spec: BenchSpec, target: Target, prompt: Prompt, clock: RunClock,
    counter: TokenCounter, base: RequestRecord,
) -> RequestRecord:
    """``base`` carries the identity and ``t_sched``; returns it completed."""
    payload = msgspec.json.encode(request_body(spec, target, prompt))
    headers = {"content-type": "application/json"}
    if target.api_key:
        headers["authorization"] = f"Bearer {target.api_key}"
    r = base
    stream = _Stream(r, counter)
    r.t_send = clock.now()
    try:
        async with asyncio.timeout(spec.timeout_s), \
                transport.stream(url_for(spec, target), headers, payload) as resp:
            r.status = resp.status
            r.trace_id = resp.headers.get(TRACE_HEADER)
            r.request_id = resp.headers.get("x-request-id")
            r.gateway_headers = {k: v for k, v in resp.headers.items() if k.startswith(GATEWAY_HEADER_PREFIX)}
            if resp.status != 200:
                body = await resp.aread()
                r.error_type, r.error_message = f"http_{resp.status}", body[:500].decode(errors="replace")
            else:
                parser = SSEParser()
                async for raw in resp.aiter_raw():
                    stream.on_read(clock.now(), parser.feed(raw))
                stream.on_read(clock.now(), parser.close())
    except TimeoutError:
        r.error_type, r.error_message = "timeout", f"no complete response within {spec.timeout_s:g}s"
    except ConnectError as exc:
        r.error_type, r.error_message = "connect_error", str(exc)
    except TransportError as exc:
        # The connection broke: an incomplete stream if tokens had started, else a transport error.
        if r.t_first is None:
            r.error_type = "transport_error"
        r.error_message = str(exc)
    r.t_end = clock.now()
    stream.finish()
    return r
