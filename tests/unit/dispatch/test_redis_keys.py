"""Key names: hash tags keep every script within one Redis Cluster slot."""

from __future__ import annotations

from redis.crc import key_slot

from dispatch.redis.keys import Keys


def test_backend_keys_share_one_slot() -> None:
    keys = Keys("lg", 3)
    names = [*keys.job_streams("vllm-a"), keys.dead("vllm-a"), keys.workers("vllm-a"), *keys.queue_keys("vllm-a")]
    assert len({key_slot(k.encode()) for k in names}) == 1


def test_gateway_keys_share_one_slot() -> None:
    keys = Keys("lg", 2)
    inbox = keys.inbox("gw1")
    assert inbox == "lg:gw:{gw1}:inbox"
    names = [inbox, Keys.cancel_flag(inbox, "job"), Keys.streamed(inbox, "job")]
    assert len({key_slot(k.encode()) for k in names}) == 1


def test_bands_are_served_highest_first_and_priorities_clamp() -> None:
    keys = Keys("lg", 3)
    assert keys.job_streams("b") == ["lg:{b}:jobs:2", "lg:{b}:jobs:1", "lg:{b}:jobs:0"]
    assert [keys.band(p) for p in (-5, 0, 1, 2, 9)] == [0, 0, 1, 2, 2]
