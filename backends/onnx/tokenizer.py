"""The exported model's tokenizer, without loading the model a second time through onnxruntime-genai.

``tokenizer.json`` through the tokenizers library (also a faithful incremental decoder: onnxruntime-genai's
decode turns an id list holding an incomplete UTF-8 character into a lone U+FFFD) and the chat template rendered
with Jinja2 the way Transformers renders it.
"""

from __future__ import annotations

import json
from collections.abc import Sequence as Seq
from pathlib import Path
from typing import Any

import tokenizers
from jinja2.sandbox import ImmutableSandboxedEnvironment

from backends.request import ChatMessage


class ModelTokenizer:
    def __init__(self, model_dir: Path) -> None:
        self._tokenizer = tokenizers.Tokenizer.from_file(str(model_dir / "tokenizer.json"))
        config_path = model_dir / "tokenizer_config.json"
        config: dict[str, Any] = json.loads(config_path.read_text()) if config_path.is_file() else {}
        template_path = model_dir / "chat_template.jinja"
        source = template_path.read_text() if template_path.is_file() else config.get("chat_template")
        env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True)
        self._template = env.from_string(source) if source else None
        self._specials = {k: _token_text(config.get(k)) for k in ("bos_token", "eos_token", "pad_token")}

    def encode_chat(self, messages: Seq[ChatMessage]) -> list[int]:
        if self._template is None:
            raise ValueError("the model has no chat template; use the completions API")
        rendered = self._template.render(messages=[{"role": m.role, "content": m.content} for m in messages],
                                         add_generation_prompt=True, **self._specials)
        # The template already holds any BOS it wants.
        return list(self._tokenizer.encode(rendered, add_special_tokens=False).ids)

    def encode_text(self, prompt: str) -> list[int]:
        return list(self._tokenizer.encode(prompt).ids)

    def decode(self, ids: Seq[int]) -> str:
        return str(self._tokenizer.decode(list(ids), skip_special_tokens=True))


def _token_text(value: Any) -> str:
    if isinstance(value, dict):
        return str(value.get("content", ""))
    return "" if value is None else str(value)
