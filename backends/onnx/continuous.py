"""The ``onnx`` engine with lockgate's continuous batching over an onnxruntime session (the default).

onnxruntime-genai's own Engine batches continuously only for paged-attention models on CUDA; on CPU it runs
static batches (see ``genai.py``). This engine runs the same exported model under the shared scheduler.
"""

from __future__ import annotations

import json
from collections.abc import Sequence as Seq
from pathlib import Path

import onnxruntime as ort

from backends.inproc.engine import ScheduledEngine
from backends.inproc.scheduler import Scheduler
from backends.onnx.options import OnnxOptions
from backends.onnx.runner import OrtBatch
from backends.onnx.tokenizer import ModelTokenizer
from backends.request import ChatMessage


class OrtEngine(ScheduledEngine):
    def __init__(self, name: str, options: OnnxOptions) -> None:
        model_dir = Path(options.model)
        genai = json.loads((model_dir / "genai_config.json").read_text())["model"]
        providers = ["CUDAExecutionProvider"] if options.device.startswith("cuda") else ["CPUExecutionProvider"]
        session = ort.InferenceSession(str(model_dir / genai["decoder"]["filename"]), providers=providers)
        self._tokenizer = ModelTokenizer(model_dir)
        context = int(genai["context_length"])
        self.max_model_len = min(options.max_model_len or context, context)
        eos = genai.get("eos_token_id", [])
        self.eos_ids = frozenset(eos if isinstance(eos, list) else [eos])
        decoder = genai["decoder"]
        runner = OrtBatch(session, kv_heads=int(decoder["num_key_value_heads"]), head_dim=int(decoder["head_size"]))
        self.scheduler = Scheduler(runner, name=name, max_batch_size=options.max_batch_size,
                                   max_batch_tokens=options.max_batch_tokens, max_waiting=options.max_waiting,
                                   step_log_size=options.step_log_size)
        self.scheduler.start()

    def encode_chat(self, messages: Seq[ChatMessage]) -> list[int]:
        return self._tokenizer.encode_chat(messages)

    def encode_text(self, prompt: str) -> list[int]:
        return self._tokenizer.encode_text(prompt)

    def decode(self, ids: Seq[int]) -> str:
        return self._tokenizer.decode(ids)

