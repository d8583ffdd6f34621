"""The ``hf`` kind: Transformers models on PyTorch, continuously batched in-process."""
