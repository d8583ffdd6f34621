"""``sglang``: SGLang's server over HTTP, native ``/generate`` by default, OpenAI endpoints as an option."""

from backends.sglang.backend import SglangBackend
from backends.sglang.options import SglangOptions

__all__ = ["SglangBackend", "SglangOptions"]
