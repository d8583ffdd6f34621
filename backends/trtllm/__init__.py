"""``trtllm``: TensorRT-LLM's ``trtllm-serve`` OpenAI endpoints, or Triton's ``generate_stream`` as an option."""

from backends.trtllm.backend import TrtllmBackend
from backends.trtllm.options import TrtllmOptions

__all__ = ["TrtllmBackend", "TrtllmOptions"]
