"""Entry point of the ``onnx`` kind."""

from __future__ import annotations

from typing import Any

from backends.inproc.adapter import InprocBackend
from backends.onnx.options import OnnxOptions


class OnnxPlugin:
    kind = "onnx"
    options_type = OnnxOptions

    def create(self, name: str, options: Any) -> InprocBackend:
        assert isinstance(options, OnnxOptions)

        def load() -> Any:
            # Imported here so that gateways without the ``onnx`` extra can still list this kind.
            if options.batching == "genai":
                from backends.onnx.genai import GenaiEngine

                return GenaiEngine(name, options)
            from backends.onnx.continuous import OrtEngine

            return OrtEngine(name, options)

        return InprocBackend(name, "onnxruntime", options, load)


plugin = OnnxPlugin()
