"""Load per backend: lockgate's own in-flight counts plus what the engine reports about itself."""

from __future__ import annotations

from backends.protocol import Load


class LoadBoard:
    def __init__(self, capacity: dict[str, int]) -> None:
        """``capacity``: how many jobs each backend runs at once (its workers' concurrency)."""
        self._capacity = {name: max(1, c) for name, c in capacity.items()}
        self._in_flight = dict.fromkeys(capacity, 0)
        self._engine: dict[str, Load | None] = dict.fromkeys(capacity)

    def acquire(self, backend: str) -> None:
        self._in_flight[backend] += 1

    def release(self, backend: str) -> None:
        self._in_flight[backend] = max(0, self._in_flight[backend] - 1)

    def in_flight(self, backend: str) -> int:
        return self._in_flight[backend]

    def set_engine_load(self, backend: str, load: Load | None) -> None:
        self._engine[backend] = load

    def score(self, backend: str) -> float:
        """0 when idle; 1 when full. Lockgate's in-flight count reacts at once, the engine's waiting queue
        and KV-cache use catch load from elsewhere (other gateways, other clients of the engine)."""
        engine = self._engine[backend]
        waiting = engine.waiting if engine else 0
        score = (self._in_flight[backend] + waiting) / self._capacity[backend]
        if engine and engine.kv_cache_usage is not None:
            score = max(score, engine.kv_cache_usage)
        return score
