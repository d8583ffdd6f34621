"""Fair shares between tenants of one priority band: start-time fair queueing tags.

Each job gets a tag: one more than the larger of the band's virtual time (the tag of the job served last)
and the tag of its tenant's previous job. Serving jobs in tag order gives every tenant with waiting jobs one
turn per round, however many jobs another tenant queued: a tenant that sends 100 jobs at once holds tags
v+1 .. v+100, and a job that arrives later is tagged v'+1, right behind the one being served. The Redis
dispatch computes the same tags in Lua (``dispatch/redis/scripts.py``).
"""

from __future__ import annotations

PRUNE_AT = 4096
"""Tenant entries kept before those at or behind the virtual time (they add nothing) are dropped."""


class FairTags:
    def __init__(self) -> None:
        self._virtual: dict[int, int] = {}
        self._last: dict[tuple[int, str], int] = {}

    def tag(self, band: int, tenant: str) -> int:
        """The tag of a new job of ``tenant`` in ``band`` (lower is served first)."""
        tag = max(self._virtual.get(band, 0), self._last.get((band, tenant), 0)) + 1
        self._last[(band, tenant)] = tag
        if len(self._last) > PRUNE_AT:
            self._last = {k: t for k, t in self._last.items() if t > self._virtual.get(k[0], 0)}
        return tag

    def served(self, band: int, tag: int) -> None:
        """A job with ``tag`` was taken: the band's virtual time moves up to it."""
        if tag > self._virtual.get(band, 0):
            self._virtual[band] = tag
