"""Runs an onnxruntime-genai ``Engine`` (``batching = "genai"``) in a dedicated thread, mapping its events onto
lockgate sequences.

The engine owns batching and sampling; lockgate owns detokenization (UTF-8 safe), stop strings and counting,
through the shared ``Sequence``. Requests are created, begun and cancelled only from the engine thread, between
``Engine.run`` calls, so the engine is never touched from two threads.
"""

from __future__ import annotations

import collections
import json
import logging
import threading
import time
from collections.abc import Sequence as Seq
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime_genai as og
import tokenizers

from backends.inproc.scheduler import QueueFull, StepRecord
from backends.inproc.sequence import Sequence
from backends.inproc.sink import flush
from backends.onnx.options import OnnxOptions
from backends.request import ChatMessage

log = logging.getLogger("lockgate.onnx")

_TOKEN = int(og.EngineEventFlags.TOKEN)
_FINISHED = int(og.EngineEventFlags.TURN_FINISHED)
_FAILED = int(og.EngineEventFlags.FAILED)
_STOP_REASONS = (og.FinishReason.EOS, og.FinishReason.STOP_STRING)


class _Live:
    """A sequence admitted to the engine."""

    def __init__(self, seq: Sequence, request: Any, turn: int) -> None:
        self.seq, self.request, self.turn = seq, request, turn
        self.cancel_sent = False


class _Solo:
    """A seeded sampling request under static batching, which cannot seed one request: it runs on its own
    batch-1 ``og.Generator`` with its own seed, stepped in the engine thread beside the batch."""

    def __init__(self, seq: Sequence, model: Any) -> None:
        p = seq.sampling
        total = seq.prompt_len + seq.max_new_tokens
        minimum = total if seq.ignore_eos else seq.prompt_len + seq.min_tokens
        params = og.GeneratorParams(model)
        params.set_search_options(do_sample=True, temperature=p.temperature, top_p=p.top_p, top_k=p.top_k,
                                  random_seed=p.seed, max_length=total, min_length=minimum)
        self.seq = seq
        self.generator = og.Generator(model, params)
        self.generator.append_tokens(np.asarray(seq.prompt_ids, dtype=np.int32))

    def step(self) -> bool:
        """Generate one token; return True when the sequence is over."""
        if self.seq.cancelled or self.seq.finished:
            return True
        self.generator.generate_next_token()
        token = int(self.generator.get_next_tokens()[0])
        if self.seq.on_token(token):
            return True
        if self.generator.is_done():
            self.seq.finish_engine("stop" if token in self.seq.eos_ids else "length")
            return True
        return False


class GenaiEngine:
    def __init__(self, name: str, options: OnnxOptions) -> None:
        self._options = options
        self._max_batch_size = options.max_batch_size
        self._max_waiting = options.max_waiting
        self._model: Any = None
        self._engine: Any = None
        self._loaded = threading.Event()
        self._load_error: BaseException | None = None
        self._submitted: collections.deque[Sequence] = collections.deque()
        self._live: dict[int, _Live] = {}
        self._solos: list[_Solo] = []
        self._cond = threading.Condition()
        self._stopping = False
        self.dead: str | None = None
        self.steps: collections.deque[StepRecord] = collections.deque(maxlen=options.step_log_size)
        self.max_batch_seen = 0
        self._touched: list[Sequence] = []  # sequences with events to deliver at the end of this step
        self._thread = threading.Thread(target=self._run, name=f"lockgate-engine-{name}", daemon=True)
        self._thread.start()
        self._loaded.wait()
        if self._load_error is not None:
            raise self._load_error
        self._tokenizer = og.Tokenizer(self._model)
        # onnxruntime-genai's decode turns a whole id list holding one invalid UTF-8 fragment into a lone U+FFFD,
        # which defeats incremental decoding; the tokenizers library decodes the same tokenizer.json faithfully.
        self._decoder = tokenizers.Tokenizer.from_file(str(Path(options.model) / "tokenizer.json"))
        genai = json.loads((Path(options.model) / "genai_config.json").read_text())
        context = int(genai["model"]["context_length"])
        self.max_model_len = min(options.max_model_len or context, context)
        self.eos_ids = frozenset(int(t) for t in self._tokenizer.eos_token_ids)

    def encode_chat(self, messages: Seq[ChatMessage]) -> list[int]:
        rendered = self._tokenizer.apply_chat_template(
            json.dumps([{"role": m.role, "content": m.content} for m in messages]), add_generation_prompt=True)
        return [int(t) for t in self._tokenizer.encode(rendered)]

    def encode_text(self, prompt: str) -> list[int]:
        return [int(t) for t in self._tokenizer.encode(prompt)]

    def decode(self, ids: Seq[int]) -> str:
        return str(self._decoder.decode(list(ids), skip_special_tokens=True))

    def submit(self, seq: Sequence) -> None:
        with self._cond:
            if self.dead is not None:
                raise RuntimeError(self.dead)
            if len(self._submitted) + len(self._live) >= self._max_waiting + self._max_batch_size:
                raise QueueFull
            self._submitted.append(seq)
            self._cond.notify()

    def cancelled(self, seq: Sequence) -> None:
        with self._cond:
            self._cond.notify()

    def running(self) -> int:
        return min(len(self._live), self._max_batch_size) + len(self._solos)

    def waiting(self) -> int:
        return len(self._submitted) + max(0, len(self._live) - self._max_batch_size)

    def close(self) -> None:
        with self._cond:
            self._stopping = True
            self._cond.notify()
        self._thread.join(10)

    def _load(self) -> None:
        # onnxruntime-genai binds an Engine to the thread that created it: load and run in the same thread.
        options = self._options
        config = og.Config(options.model)
        if options.device.startswith("cuda"):
            config.clear_providers()
            config.append_provider("cuda")
        mode = "dynamic_batching" if options.dynamic_batching else "static_batching"
        config.overlay(json.dumps({"engine": {mode: {"max_batch_size": options.max_batch_size}}}))
        self._model = og.Model(config)
        self._engine = og.Engine(self._model)

    def _run(self) -> None:
        try:
            self._load()
        except BaseException as exc:
            self._load_error = exc
            return
        finally:
            self._loaded.set()
        try:
            buffer = self._engine.create_event_buffer(max(64, 4 * self._max_batch_size))
            while True:
                with self._cond:
                    while not self._stopping and not self._submitted and not self._live and not self._solos:
                        self._cond.wait()
                    if self._stopping:
                        break
                if not self._live and not self._solos and self._options.gather_ms > 0:
                    # Static batching admits nothing until the running batch drains: give requests that arrive
                    # together a moment to start together.
                    time.sleep(self._options.gather_ms / 1000)
                with self._cond:
                    new = list(self._submitted)
                    self._submitted.clear()
                try:
                    self._step(new, buffer)
                finally:
                    flush(s.sink for s in self._touched)
                    self._touched = []
            self._fail_live("the engine was shut down", status=503)
        except BaseException as exc:  # never leave clients waiting on a dead thread
            log.exception("engine thread crashed")
            with self._cond:
                self.dead = f"engine thread crashed: {type(exc).__name__}: {exc}"
                pending = list(self._submitted)
                self._submitted.clear()
            for seq in pending:
                seq.fail(self.dead)
            flush(s.sink for s in pending)
            self._fail_live(self.dead)

    def _step(self, new: list[Sequence], buffer: Any) -> None:
        for seq in new:
            if seq.sampling.seed is not None and not seq.sampling.greedy and not self._options.dynamic_batching:
                self._start_solo(seq)
            else:
                self._begin(seq)
        self._send_cancels()
        self._step_solos()
        if not self._engine.has_pending_requests():
            return
        started = time.perf_counter_ns()
        try:
            events = self._engine.run(buffer)
        except Exception as exc:
            log.exception("engine step failed")
            self._fail_live(f"engine step failed: {type(exc).__name__}: {exc}")
            return
        self._dispatch(events, time.perf_counter_ns() - started)

    def _start_solo(self, seq: Sequence) -> None:
        self._touched.append(seq)
        try:
            self._solos.append(_Solo(seq, self._model))
        except Exception as exc:
            seq.fail(f"engine refused the request: {type(exc).__name__}: {exc}", status=400,
                     type_="invalid_request_error")

    def _step_solos(self) -> None:
        keep = []
        for solo in self._solos:
            self._touched.append(solo.seq)
            try:
                done = solo.step()
            except Exception as exc:
                log.exception("generator step failed")
                solo.seq.fail(f"engine step failed: {type(exc).__name__}: {exc}")
                done = True
            if not done:
                keep.append(solo)
        self._solos = keep

    def _begin(self, seq: Sequence) -> None:
        if seq.cancelled:
            return
        self._touched.append(seq)
        try:
            request = self._engine.create_request()
            turn_options = og.TurnOptions(request)
            turn_options.set_max_generated_tokens(seq.max_new_tokens)
            min_tokens = seq.max_new_tokens if seq.ignore_eos else seq.min_tokens
            if min_tokens:
                turn_options.set_min_generated_tokens(min_tokens)
            p = seq.sampling
            turn_options.set_do_sample(not p.greedy)
            if not p.greedy:
                turn_options.set_temperature(p.temperature)
                turn_options.set_top_p(p.top_p)
                turn_options.set_top_k(p.top_k)
            if p.seed is not None:
                turn_options.set_seed(p.seed)
            turn = request.begin_turn(np.asarray(seq.prompt_ids, dtype=np.int32), turn_options)
        except Exception as exc:
            seq.fail(f"engine refused the request: {type(exc).__name__}: {exc}", status=400,
                     type_="invalid_request_error")
            return
        self._live[id(request)] = _Live(seq, request, turn)

    def _send_cancels(self) -> None:
        for live in self._live.values():
            if (live.seq.cancelled or live.seq.finished) and not live.cancel_sent:
                live.cancel_sent = True
                live.request.cancel_turn(live.turn)

    def _dispatch(self, events: Any, duration_ns: int) -> None:
        tokens = 0
        for event in events:
            live = self._live.get(id(event.request))
            if live is None:
                continue
            self._touched.append(live.seq)
            flags = int(event.flags)
            if flags & _TOKEN:
                tokens += 1
                live.seq.on_token(int(event.token))
            if flags & _FAILED:
                live.seq.fail(f"engine failed the request (error {event.error_code})")
            if flags & (_FINISHED | _FAILED):
                reason = "stop" if event.finish_reason in _STOP_REASONS else "length"
                live.seq.finish_engine(reason)
                self._close(live)
        if tokens:
            self.max_batch_seen = max(self.max_batch_seen, tokens)
            self.steps.append(StepRecord(t_ns=time.time_ns(), batch_size=tokens, prefilled=0, duration_ns=duration_ns))
        # Sequences that finished on our side (stop strings) are cancelled in the engine before its next step.
        self._send_cancels()

    def _close(self, live: _Live) -> None:
        self._live.pop(id(live.request), None)
        live.request.close()

    def _fail_live(self, message: str, *, status: int = 500) -> None:
        failed = [live.seq for live in self._live.values()] + [solo.seq for solo in self._solos]
        for solo in self._solos:
            solo.seq.fail(message, status=status)
        self._solos = []
        for live in list(self._live.values()):
            live.seq.fail(message, status=status)
            self._close(live)
        flush(seq.sink for seq in failed)
