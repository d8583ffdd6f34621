"""Sticky arm assignment: a key hashes to a point in [0, 1); arms own consecutive slices of that interval.

Because slices keep their order, changing weights moves only the keys in the slices that changed size:
50/50 -> 60/40 moves the keys in [0.5, 0.6), i.e. 10% of them, the fewest possible.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence


def point(key: str, salt: str) -> float:
    digest = hashlib.sha256(f"{salt}\x00{key}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


def slice_of(p: float, weights: Sequence[float]) -> int:
    """Index of the slice of [0, 1) containing ``p`` when slices are proportional to ``weights``."""
    total = sum(weights)
    if total <= 0:
        raise ValueError("weights must not all be zero")
    edge = 0.0
    for i, w in enumerate(weights):
        edge += w / total
        if p < edge:
            return i
    return max(i for i, w in enumerate(weights) if w > 0)


def rendezvous(key: str, candidates: Sequence[str]) -> str:
    """Highest-random-weight choice: stable per key, and moving one candidate moves only its keys."""
    return max(candidates, key=lambda c: hashlib.sha256(f"{c}\x00{key}".encode()).digest())
