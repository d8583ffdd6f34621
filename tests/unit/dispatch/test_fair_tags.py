"""Fair tags: a tenant's burst takes one turn per round, not the whole band."""

from __future__ import annotations

import heapq

from dispatch.fair import FairTags


def test_a_late_tenant_is_served_within_one_round_of_a_burst() -> None:
    tags = FairTags()
    queue = [(tags.tag(0, "flood"), i, "flood") for i in range(100)]
    heapq.heapify(queue)
    served = []
    for _ in range(10):
        tag, _, who = heapq.heappop(queue)
        tags.served(0, tag)
        served.append(who)
    heapq.heappush(queue, (tags.tag(0, "trickle"), 1000, "trickle"))
    heapq.heappush(queue, (tags.tag(0, "trickle"), 1001, "trickle"))
    order = [heapq.heappop(queue)[2] for _ in range(5)]
    assert order == ["flood", "trickle", "flood", "trickle", "flood"]


def test_bands_keep_their_own_virtual_time() -> None:
    tags = FairTags()
    for _ in range(5):
        tags.served(1, tags.tag(1, "a"))
    assert tags.tag(0, "b") == 1
    assert tags.tag(1, "b") == 6
