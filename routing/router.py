"""Picks a backend for a request from its model's pool: weighted, among available backends."""

from __future__ import annotations

import random

import msgspec

from gateway.config.schema import ModelConfig
from routing.health import HealthBoard


class RouteDecision(msgspec.Struct, frozen=True):
    backend: str
    arm: str
    reason: str
    candidates: tuple[str, ...]


class Router:
    def __init__(self, models: dict[str, ModelConfig], health: HealthBoard, rng: random.Random | None = None) -> None:
        self._pools = {name: [(m.backend, m.weight) for m in model.backends] for name, model in models.items()}
        self.health = health
        self._rng = rng or random.Random()

    def pick(self, model: str, exclude: frozenset[str] = frozenset()) -> RouteDecision | None:
        pool = self._pools[model]
        candidates = [(b, w) for b, w in pool if w > 0 and b not in exclude and self.health.available(b)]
        reason = "weighted"
        if not candidates and exclude:
            # Every other backend is out: trying an excluded but healthy one again beats failing.
            candidates = [(b, w) for b, w in pool if w > 0 and self.health.available(b)]
            reason = "weighted-retry-same"
        if not candidates:
            return None
        backend = self._rng.choices([b for b, _ in candidates], weights=[w for _, w in candidates])[0]
        return RouteDecision(backend=backend, arm=backend, reason=reason,
                             candidates=tuple(b for b, _ in candidates))
