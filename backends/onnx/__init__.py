"""The ``onnx`` kind: models exported for onnxruntime-genai, batched by its ``Engine`` in-process."""
