"""A model's pool as routing sees it: arms of primary members, fallbacks, shadows."""

from __future__ import annotations

import msgspec

from gateway.config.schema import ModelConfig


class Member(msgspec.Struct, frozen=True):
    backend: str
    weight: float


class Arm(msgspec.Struct, frozen=True):
    name: str
    members: tuple[Member, ...]

    @property
    def weight(self) -> float:
        return sum(m.weight for m in self.members)


class Pool(msgspec.Struct, frozen=True):
    model: str
    arms: tuple[Arm, ...]
    fallbacks: tuple[Member, ...]
    shadows: tuple[Member, ...]
    config: ModelConfig

    @classmethod
    def from_config(cls, model: str, config: ModelConfig) -> Pool:
        arms: dict[str, list[Member]] = {}
        fallbacks, shadows = [], []
        for m in config.backends:
            member = Member(m.backend, m.weight)
            if m.role == "fallback":
                fallbacks.append(member)
            elif m.role == "shadow":
                shadows.append(member)
            elif m.weight > 0:
                arms.setdefault(m.arm or m.backend, []).append(member)
        return cls(model=model, arms=tuple(Arm(name, tuple(ms)) for name, ms in arms.items()),
                   fallbacks=tuple(fallbacks), shadows=tuple(shadows), config=config)

    def members(self) -> set[str]:
        return {m.backend for arm in self.arms for m in arm.members} | {
            m.backend for m in (*self.fallbacks, *self.shadows)}

    def arm_of(self, backend: str) -> str:
        for arm in self.arms:
            if any(m.backend == backend for m in arm.members):
                return arm.name
        return "fallback" if any(m.backend == backend for m in self.fallbacks) else backend
