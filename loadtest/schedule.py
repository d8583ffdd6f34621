"""Seeded arrival schedules: the intended send time of every request, the same for every target."""

from __future__ import annotations

import random

from loadtest.config import LoadShape


def interarrival(rng: random.Random, load: LoadShape) -> float:
    """One gap in seconds. Gamma with shape ``burstiness`` and mean 1/rate; shape 1 is Poisson."""
    assert load.rate is not None
    if load.arrival == "constant":
        return 1.0 / load.rate
    if load.arrival == "poisson":
        return rng.expovariate(load.rate)
    return rng.gammavariate(load.burstiness, 1.0 / (load.rate * load.burstiness))


def open_loop(load: LoadShape, seed: int, count: int | None, duration_s: float | None) -> list[float]:
    """Offsets (s) from the run start. The first request goes at 0; stops at ``count`` or ``duration_s``."""
    if count is None and duration_s is None:
        raise ValueError("an open-loop schedule needs a count or a duration")
    rng = random.Random(seed)
    offsets: list[float] = []
    t = 0.0
    while (count is None or len(offsets) < count) and (duration_s is None or t < duration_s):
        offsets.append(t)
        t += interarrival(rng, load)
    return offsets
