"""Shared pieces of the in-process engines (``hf``, ``onnx``): sequences, detokenization, the thread bridge."""
