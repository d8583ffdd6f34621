"""What the experiment readout reports: per arm, and per shadow pair, on the gateway's own measurements.

Both sides of a shadow pair are timed at the same point (when events reach the gateway), so the paired
difference compares engines, not the client connection.
"""

from __future__ import annotations

import uuid
from collections import deque

import msgspec

from routing.stats import PairedDifference, Reservoir, Summary, paired_difference, summarize

LATENCIES = ("ttft", "tpot", "itl", "e2e")


class Timing(msgspec.Struct, frozen=True):
    """One side of one request, measured at the gateway (seconds)."""

    backend: str
    ok: bool
    error: str | None = None
    ttft: float | None = None
    tpot: float | None = None
    itl: float | None = None
    e2e: float | None = None
    prompt_tokens: int = 0
    completion_tokens: int = 0


class _ArmStats:
    def __init__(self) -> None:
        self.requests = 0
        self.errors = 0
        self.prompt_tokens = 0
        self.completion_tokens = 0
        self.latency = {name: Reservoir() for name in LATENCIES}

    def add(self, t: Timing) -> None:
        self.requests += 1
        self.errors += 0 if t.ok else 1
        self.prompt_tokens += t.prompt_tokens
        self.completion_tokens += t.completion_tokens
        for name in LATENCIES:
            value = getattr(t, name)
            if value is not None:
                self.latency[name].add(value)


class ArmReport(msgspec.Struct, frozen=True):
    requests: int
    errors: int
    error_rate: float
    prompt_tokens: int
    completion_tokens: int
    ttft: Summary
    tpot: Summary
    itl: Summary
    e2e: Summary


class PairSide(msgspec.Struct, frozen=True):
    backend: str
    errors: int
    completion_tokens: int
    ttft: Summary
    tpot: Summary
    itl: Summary
    e2e: Summary


class ShadowReport(msgspec.Struct, frozen=True):
    pairs: int
    primary: PairSide
    shadow: PairSide
    difference: dict[str, PairedDifference]
    """shadow - primary per latency, over the pairs where both sides succeeded."""


class ModelReport(msgspec.Struct, frozen=True):
    arms: dict[str, ArmReport]
    shadows: dict[str, ShadowReport]
    """Keyed ``primary->shadow`` backend names."""


class PairRecord(msgspec.Struct, frozen=True):
    pair_id: str
    model: str
    primary: Timing
    shadow: Timing


class ExperimentStore:
    """In-memory, per gateway process, bounded: reservoirs per arm, the last ``max_pairs`` shadow pairs."""

    def __init__(self, max_pairs: int = 10_000) -> None:
        self._arms: dict[tuple[str, str], _ArmStats] = {}
        self.pairs: deque[PairRecord] = deque(maxlen=max_pairs)
        self._open: dict[str, tuple[str, Timing | None, Timing | None]] = {}

    def record_arm(self, model: str, arm: str, timing: Timing) -> None:
        self._arms.setdefault((model, arm), _ArmStats()).add(timing)

    def open_pair(self, model: str) -> str:
        pair_id = uuid.uuid4().hex
        self._open[pair_id] = (model, None, None)
        return pair_id

    def record_side(self, pair_id: str, side: str, timing: Timing) -> None:
        model, primary, shadow = self._open[pair_id]
        if side == "primary":
            primary = timing
        else:
            shadow = timing
        if primary is not None and shadow is not None:
            del self._open[pair_id]
            self.pairs.append(PairRecord(pair_id, model, primary, shadow))
        else:
            self._open[pair_id] = (model, primary, shadow)

    def abandon_pair(self, pair_id: str) -> None:
        self._open.pop(pair_id, None)

    def report(self) -> dict[str, ModelReport]:
        models: dict[str, ModelReport] = {}
        for (model, arm), s in sorted(self._arms.items()):
            rep = models.setdefault(model, ModelReport({}, {}))
            rep.arms[arm] = ArmReport(
                requests=s.requests, errors=s.errors, error_rate=s.errors / s.requests if s.requests else 0.0,
                prompt_tokens=s.prompt_tokens, completion_tokens=s.completion_tokens,
                **{name: summarize(r.values, r.count) for name, r in s.latency.items()})
        groups: dict[tuple[str, str, str], list[PairRecord]] = {}
        for p in self.pairs:
            groups.setdefault((p.model, p.primary.backend, p.shadow.backend), []).append(p)
        for (model, primary, shadow), pairs in groups.items():
            rep = models.setdefault(model, ModelReport({}, {}))
            both = [p for p in pairs if p.primary.ok and p.shadow.ok]
            diff = {}
            for name in LATENCIES:
                usable = [(getattr(p.primary, name), getattr(p.shadow, name)) for p in both
                          if getattr(p.primary, name) is not None and getattr(p.shadow, name) is not None]
                diff[name] = paired_difference([a for a, _ in usable], [b for _, b in usable])
            rep.shadows[f"{primary}->{shadow}"] = ShadowReport(
                pairs=len(pairs), primary=_side(primary, [p.primary for p in pairs]),
                shadow=_side(shadow, [p.shadow for p in pairs]), difference=diff)
        return models


def _side(backend: str, timings: list[Timing]) -> PairSide:
    def values(name: str) -> list[float]:
        return [v for t in timings if (v := getattr(t, name)) is not None]

    return PairSide(backend=backend, errors=sum(1 for t in timings if not t.ok),
                    completion_tokens=sum(t.completion_tokens for t in timings),
                    ttft=summarize(values("ttft")), tpot=summarize(values("tpot")), itl=summarize(values("itl")),
                    e2e=summarize(values("e2e")))
