"""Loads a Transformers causal LM and its tokenizer, and runs them under the continuous-batching scheduler."""

from __future__ import annotations

from collections.abc import Sequence as Seq
from typing import Any

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from backends.hf.batch import HfBatch
from backends.hf.options import HfOptions
from backends.inproc.engine import ScheduledEngine
from backends.inproc.scheduler import Scheduler
from backends.request import ChatMessage

_DTYPES = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}


class HfEngine(ScheduledEngine):
    def __init__(self, name: str, options: HfOptions) -> None:
        device = torch.device(options.device)
        if options.torch_threads is not None:
            torch.set_num_threads(options.torch_threads)
        dtype = _DTYPES.get(options.dtype) or (torch.float32 if device.type == "cpu" else torch.bfloat16)
        self.tokenizer: Any = AutoTokenizer.from_pretrained(options.model)
        model: Any = AutoModelForCausalLM.from_pretrained(
            options.model, dtype=dtype, attn_implementation=options.attn_implementation)
        self.model: Any = model.to(device).eval()
        config_len = int(getattr(self.model.config, "max_position_embeddings", 0) or 2048)
        self.max_model_len = min(options.max_model_len or config_len, config_len)
        self.eos_ids = frozenset(_eos_ids(self.model, self.tokenizer))
        self.scheduler = Scheduler(HfBatch(self.model, device), name=name, max_batch_size=options.max_batch_size,
                                   max_batch_tokens=options.max_batch_tokens, max_waiting=options.max_waiting,
                                   step_log_size=options.step_log_size)
        self.scheduler.start()

    def encode_chat(self, messages: Seq[ChatMessage]) -> list[int]:
        rendered = self.tokenizer.apply_chat_template(
            [{"role": m.role, "content": m.content} for m in messages], add_generation_prompt=True, tokenize=False)
        # The template already holds any BOS it wants.
        return list(self.tokenizer(rendered, add_special_tokens=False)["input_ids"])

    def encode_text(self, prompt: str) -> list[int]:
        return list(self.tokenizer(prompt)["input_ids"])

    def decode(self, ids: Seq[int]) -> str:
        return str(self.tokenizer.decode(list(ids), skip_special_tokens=True))


def _eos_ids(model: Any, tokenizer: Any) -> set[int]:
    found: set[int] = set()
    for source in (getattr(model, "generation_config", None), model.config, tokenizer):
        value = getattr(source, "eos_token_id", None)
        if isinstance(value, int):
            found.add(value)
        elif isinstance(value, list | tuple):
            found.update(int(v) for v in value)
    return found
