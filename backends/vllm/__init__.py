"""``vllm``: vLLM's OpenAI-compatible server over HTTP."""

from backends.vllm.backend import VllmBackend
from backends.vllm.options import VllmOptions

__all__ = ["VllmBackend", "VllmOptions"]
