"""lockgate's job priority in each engine's own terms.

lockgate: an int band, higher is served first, 0 is the default (all traffic without a band). The engines
disagree on direction, type and on what happens when their scheduler does not use priorities:

- vLLM: ``priority`` int, **lower** runs first; honoured only with ``--scheduling-policy priority``, and any
  non-zero value without it is a 400 ("Got priority N but Priority scheduling is not enabled.").
- SGLang (``/generate`` and ``/v1``): ``priority`` int, higher runs first unless the server runs with
  ``--schedule-low-priority-values-first``; honoured only with ``--enable-priority-scheduling``, ignored
  otherwise (or the request is aborted with ``--abort-on-priority-when-disabled``).
- TensorRT-LLM (``trtllm-serve``): ``priority`` float in [0, 1], higher first, 0.5 neutral.
"""

from __future__ import annotations


def vllm_priority(band: int) -> int:
    return -band


def sglang_priority(band: int, *, low_values_first: bool) -> int:
    return -band if low_values_first else band


def trtllm_priority(band: int, levels: int) -> float:
    """Bands ``-levels..levels`` spread over [0, 1] around the neutral 0.5; beyond that they are clamped."""
    return min(1.0, max(0.0, 0.5 + band / (2 * levels)))
