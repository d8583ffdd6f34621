"""Options of the simulated engine (``kind = "sim"``)."""

from __future__ import annotations

from typing import Annotated, Literal

import msgspec

NonNeg = Annotated[float, msgspec.Meta(ge=0)]
Fault = Literal["none", "fail_before_first_token", "fail_after_tokens", "hang"]


class SimOptions(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    ttft_ms: NonNeg = 20.0
    """Prefill time before the first token, for a request that did not wait for a batch slot."""
    tpot_ms: NonNeg = 10.0
    """Time per output token at batch size 1."""
    slowdown_per_running: NonNeg = 0.0
    """Per-token time grows by this fraction for each other running sequence (0.01 = +1% each)."""
    batch_capacity: Annotated[int, msgspec.Meta(ge=1)] = 64
    """Sequences decoded at once; further requests wait in the simulator's own queue."""
    max_concurrency: Annotated[int, msgspec.Meta(ge=1)] | None = None
    """Jobs a worker runs at once on this backend (default: batch_capacity)."""
    tokens_per_chunk: Annotated[int, msgspec.Meta(ge=1)] = 1
    """Tokens carried by each streamed chunk (engines often send several at once)."""
    eos_min_tokens: Annotated[int, msgspec.Meta(ge=1)] = 16
    """Shortest natural (EOS-terminated) answer."""
    eos_max_tokens: Annotated[int, msgspec.Meta(ge=1)] = 256
    """Longest natural answer; ``ignore_eos`` generates exactly ``max_tokens``."""
    max_model_len: Annotated[int, msgspec.Meta(ge=2)] = 8192
    """Context length: prompt tokens + max_tokens beyond this fail like a real engine's context error."""
    max_n: Annotated[int, msgspec.Meta(ge=1)] = 8
    """Largest ``n`` served."""
    fault: Fault = "none"
    """Error injection applied to every request."""
    fault_after_tokens: Annotated[int, msgspec.Meta(ge=0)] = 5
    """With ``fault = "fail_after_tokens"``: tokens sent before the failure."""
    faults_from_prompt: bool = True
    """Honour ``[[sim:fail_before]]``, ``[[sim:fail_after=K]]``, ``[[sim:hang]]`` markers in prompts."""
    allow_crash: bool = False
    """Honour ``[[sim:crash]]``: the process exits at once when it takes such a request (tests of worker death).
    Never enable it where untrusted clients can send prompts."""
    start_delay_ms: NonNeg = 0.0
    """Time after ``start()`` during which health reports ``starting`` (a loading engine)."""
