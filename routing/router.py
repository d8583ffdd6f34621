"""Picks a backend for each attempt of a request.

1. The arm: sticky (a hash of the stickiness key and the experiment salt, see ``sticky``), or random by
   weight when the request has no key.
2. Within the arm, among available members: affinity (session or prompt prefix, rendezvous-hashed) unless
   that backend is saturated, else the power of two choices on load (two weighted samples, lower score wins;
   picking the global minimum would herd every gateway onto the same backend).
3. Nothing available in the arm (or everything tried): other arms, then fallback members.
"""

from __future__ import annotations

import random
from collections.abc import Sequence

import msgspec

from gateway.config.schema import ModelConfig, RoutingConfig
from routing.health import HealthBoard
from routing.load import LoadBoard
from routing.pool import Member, Pool
from routing.sticky import point, rendezvous, slice_of


class RouteContext(msgspec.Struct, frozen=True):
    sticky_key: str | None = None
    affinity_key: str | None = None
    pinned: str | None = None
    """Backend forced by an admin's pin header."""


class RouteDecision(msgspec.Struct, frozen=True):
    backend: str
    arm: str
    reason: str
    candidates: tuple[tuple[str, float], ...] = ()
    """(backend, load score) of the members considered."""

    def header(self, attempt: int) -> str:
        scores = ",".join(f"{b}:{s:.2f}" for b, s in self.candidates)
        return f"backend={self.backend}; arm={self.arm}; reason={self.reason}; attempt={attempt}; candidates={scores}"


class Router:
    def __init__(self, models: dict[str, ModelConfig], health: HealthBoard, load: LoadBoard,
                 config: RoutingConfig | None = None, rng: random.Random | None = None) -> None:
        self.pools = {name: Pool.from_config(name, m) for name, m in models.items()}
        self.health = health
        self.load = load
        self._saturation = (config or RoutingConfig()).saturation
        self._rng = rng or random.Random()

    def pick(self, model: str, ctx: RouteContext | None = None,
             exclude: frozenset[str] = frozenset()) -> RouteDecision | None:
        pool = self.pools[model]
        ctx = ctx or RouteContext()
        if ctx.pinned is not None:
            if ctx.pinned in pool.members():
                return RouteDecision(ctx.pinned, pool.arm_of(ctx.pinned), "pinned")
            return None
        if not pool.arms:
            return self._among(pool, "fallback", pool.fallbacks, ctx, exclude, "fallback")
        arm_index = self._arm_index(pool, ctx)
        order = [arm_index] + [i for i in range(len(pool.arms)) if i != arm_index]
        for rank, i in enumerate(order):
            arm = pool.arms[i]
            reason = "sticky" if ctx.sticky_key is not None else "weighted"
            decision = self._among(pool, arm.name, arm.members, ctx, exclude,
                                   reason if rank == 0 else "arm-unavailable")
            if decision:
                return decision
        decision = self._among(pool, "fallback", pool.fallbacks, ctx, exclude, "fallback")
        if decision or not exclude:
            return decision
        # Every other backend is out: trying an excluded but available one again beats failing.
        retry = self.pick(model, ctx)
        return msgspec.structs.replace(retry, reason="retry-same") if retry else None

    def arm_for(self, model: str, ctx: RouteContext) -> str:
        pool = self.pools[model]
        return pool.arms[self._arm_index(pool, ctx)].name if pool.arms else "fallback"

    def shadows(self, model: str) -> list[str]:
        return [m.backend for m in self.pools[model].shadows if self.health.available(m.backend)]

    def _arm_index(self, pool: Pool, ctx: RouteContext) -> int:
        weights = [a.weight for a in pool.arms]
        p = point(ctx.sticky_key, pool.config.experiment.salt) if ctx.sticky_key is not None \
            else self._rng.random()
        return slice_of(p, weights)

    def _among(self, pool: Pool, arm: str, members: Sequence[Member], ctx: RouteContext,
               exclude: frozenset[str], reason: str) -> RouteDecision | None:
        live = [m for m in members if m.weight > 0 and m.backend not in exclude and self.health.available(m.backend)]
        if not live:
            return None
        scores = tuple((m.backend, self.load.score(m.backend)) for m in live)
        if ctx.affinity_key is not None and pool.config.affinity != "none":
            preferred = rendezvous(ctx.affinity_key, [m.backend for m in live])
            if self.load.score(preferred) < self._saturation:
                return RouteDecision(preferred, arm, f"{reason}+affinity", scores)
            reason += "+affinity-saturated"
        if len(live) == 1:
            return RouteDecision(live[0].backend, arm, reason, scores)
        a, b = self._two(live)
        best = a if self.load.score(a.backend) <= self.load.score(b.backend) else b
        return RouteDecision(best.backend, arm, reason + "+p2c", scores)

    def _two(self, live: Sequence[Member]) -> tuple[Member, Member]:
        first = self._rng.choices(live, weights=[m.weight for m in live])[0]
        rest = [m for m in live if m is not first]
        second = self._rng.choices(rest, weights=[m.weight for m in rest])[0]
        return first, second
