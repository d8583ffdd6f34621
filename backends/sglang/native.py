"""SGLang's native ``/generate``: request mapping and its cumulative-text stream turned into deltas."""

from __future__ import annotations

from typing import Any

from backends.events import Completed, Delta, Failed
from backends.http.translate import EngineCall
from backends.request import GenerationRequest

# lockgate's engine extras with the same name in SGLang's sampling_params; the others are renamed below.
_SAME = ("top_k", "min_p", "repetition_penalty", "stop_token_ids", "ignore_eos", "presence_penalty",
         "frequency_penalty")


def generate_call(request: GenerationRequest, priority: int | None = None) -> EngineCall:
    """``priority``: the engine-scale priority to send (None: send none)."""
    params: dict[str, Any] = {"max_new_tokens": request.max_tokens}
    if request.temperature is not None:
        params["temperature"] = request.temperature
    if request.top_p is not None:
        params["top_p"] = request.top_p
    if request.stop:
        params["stop"] = list(request.stop)
    if request.n != 1:
        params["n"] = request.n
    for key in _SAME:
        if key in request.extra:
            params[key] = request.extra[key]
    if "min_tokens" in request.extra:
        params["min_new_tokens"] = request.extra["min_tokens"]
    if request.seed is not None:
        params["sampling_seed"] = request.seed
    body: dict[str, Any] = {"text": request.prompt_text(), "sampling_params": params, "stream": True,
                            "rid": request.request_id}
    if priority is not None:
        body["priority"] = priority
    return EngineCall(path="/generate", body=body, prompt_param="prompt")


class NativeChunks:
    """``text`` is the whole text so far (unless the server streams increments); ``meta_info.completion_tokens``
    is cumulative, so each delta's token count is exact."""

    def __init__(self, incremental: bool) -> None:
        self._incremental = incremental
        self._text = ""
        self._finish: str | None = None
        self._prompt_tokens = 0
        self.tokens = 0

    def feed(self, chunk: Any, t_ns: int) -> list[Delta | Completed | Failed]:
        if not isinstance(chunk, dict):
            return []
        meta = chunk.get("meta_info") or {}
        text = chunk.get("text") or ""
        if self._incremental:
            piece = text
        else:
            # Cumulative text. If detokenization revised already-sent characters (rare, at UTF-8 boundaries)
            # the client's text cannot be unsent: only what lies past the sent length goes out.
            piece = text[len(self._text):]
            self._text = text if len(text) >= len(self._text) else self._text
        done = meta.get("completion_tokens")
        tokens = max(0, done - self.tokens) if isinstance(done, int) else (1 if piece else 0)
        self._prompt_tokens = int(meta.get("prompt_tokens") or self._prompt_tokens)
        out: list[Delta | Completed | Failed] = []
        if piece or tokens:
            self.tokens += tokens
            out.append(Delta(text=piece, tokens=tokens, index=0, t_ns=t_ns))
        reason = meta.get("finish_reason")
        if isinstance(reason, dict):
            kind = reason.get("type")
            if kind == "abort":
                out.append(Failed(type="engine_error", status=502, retryable=self.tokens == 0,
                                  message=f"the engine aborted the request: {reason.get('message', '')}"))
            else:
                self._finish = "length" if kind == "length" else "stop"
        elif isinstance(reason, str):
            self._finish = "length" if reason == "length" else "stop"
        return out

    def finish(self, saw_done: bool) -> Completed | Failed:
        if self._finish is None:
            return Failed(type="engine_error", status=502, retryable=self.tokens == 0,
                          message="the engine stream ended without a finish reason")
        return Completed(finish_reasons=(self._finish,), prompt_tokens=self._prompt_tokens,
                         completion_tokens=self.tokens)
