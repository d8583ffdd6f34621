"""Triton's ``generate_stream`` for a ``tensorrtllm_backend`` model: ``text_input`` in, ``text_output`` out.

Each streamed response carries the text of the newly decoded token(s); Triton sends no finish reason, no usage
and no ``[DONE]``: the stream's clean end is the finish, and each response counts as one token.
"""

from __future__ import annotations

from typing import Any

from backends.events import Completed, Delta, Failed
from backends.http.translate import EngineCall
from backends.request import GenerationRequest


def triton_call(request: GenerationRequest, model: str) -> EngineCall:
    body: dict[str, Any] = {"text_input": request.prompt_text(), "max_tokens": request.max_tokens, "stream": True}
    if request.temperature is not None:
        body["temperature"] = request.temperature
    if request.top_p is not None:
        body["top_p"] = request.top_p
    if "top_k" in request.extra:
        body["top_k"] = request.extra["top_k"]
    if request.stop:
        body["stop_words"] = list(request.stop)
    return EngineCall(path=f"/v2/models/{model}/generate_stream", body=body, prompt_param="prompt")


class TritonChunks:
    def __init__(self, max_tokens: int) -> None:
        self._max_tokens = max_tokens
        self.tokens = 0

    def feed(self, chunk: Any, t_ns: int) -> list[Delta | Completed | Failed]:
        if not isinstance(chunk, dict) or "text_output" not in chunk:
            return []
        text = chunk.get("text_output")
        self.tokens += 1
        return [Delta(text=text if isinstance(text, str) else "", tokens=1, index=0, t_ns=t_ns)]

    def finish(self, saw_done: bool) -> Completed | Failed:
        # Errors come as {"error": ...} chunks (handled before this); a plain end is the normal finish.
        return Completed(finish_reasons=("length" if self.tokens >= self._max_tokens else "stop",),
                         prompt_tokens=0, completion_tokens=self.tokens)
