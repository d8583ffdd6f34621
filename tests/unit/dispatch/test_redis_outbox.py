"""A worker's event writing: coalescing, the ack riding on the terminal write, a vanished gateway."""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest
from redis.asyncio import Redis
from redis.asyncio.client import Pipeline
from redis.exceptions import ConnectionError as RedisConnectionError

from backends.events import Completed, Delta, Started
from dispatch.redis.keys import GROUP, Keys
from dispatch.redis.outbox import GatewayGone, InboxUnreachable, JobCancelled, Outbox
from dispatch.redis.wire import decode_events
from dispatch.redis.writer import InboxWriter

URL = os.environ.get("LOCKGATE_TEST_REDIS_URL", "redis://127.0.0.1:6379/9")


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
async def redis() -> AsyncIterator[tuple[Redis, str]]:
    client = Redis.from_url(URL)
    prefix = f"lgu{uuid.uuid4().hex[:8]}"
    yield client, prefix
    found = [k async for k in client.scan_iter(match=f"{prefix}:*")]
    if found:
        await client.delete(*found)
    await client.aclose()


async def setup(client: Redis, prefix: str) -> tuple[str, str, str]:
    keys = Keys(prefix, 1)
    inbox = keys.inbox("gw")
    await client.xadd(inbox, {"hello": "1"})
    await client.expire(inbox, 60)
    stream = keys.jobs("b", 0)
    await client.xgroup_create(stream, GROUP, id="0", mkstream=True)
    entry = (await client.xadd(stream, {"job": b"x"})).decode()
    await client.xreadgroup(GROUP, "w", {stream: ">"})
    return inbox, stream, entry


@pytest.mark.anyio
async def test_deltas_coalesce_and_the_terminal_write_acks(redis: tuple[Redis, str]) -> None:
    client, prefix = redis
    inbox, stream, entry = await setup(client, prefix)
    writer = InboxWriter(client, marker_ttl_s=60, window_s=0.05)
    writer.start()
    outbox = Outbox(writer, inbox=inbox, job_id="j", worker_id="w", ack=(stream, entry))
    await outbox.emit(Started(backend="b", engine="sim"))
    for i in range(20):
        await outbox.emit(Delta(text=str(i), tokens=1))
    await outbox.emit(Completed(finish_reasons=("stop",), prompt_tokens=1, completion_tokens=20))
    await writer.close()
    entries = [f for _, f in await client.xrange(inbox) if b"e" in f]
    events = [e for f in entries for e in decode_events(f[b"e"])]
    assert "".join(e.text for e in events if isinstance(e, Delta)) == "".join(map(str, range(20)))
    assert len(entries) < 10, "deltas within the window share XADDs"
    assert outbox.acked
    assert await client.xlen(stream) == 0
    assert await client.xpending(stream, GROUP) == {"pending": 0, "min": None, "max": None, "consumers": []}
    assert await client.exists(Keys.streamed(inbox, "j")) == 0


@pytest.mark.anyio
async def test_first_token_sets_the_streamed_marker(redis: tuple[Redis, str]) -> None:
    client, prefix = redis
    inbox, stream, entry = await setup(client, prefix)
    writer = InboxWriter(client, marker_ttl_s=60, window_s=0.001)
    writer.start()
    outbox = Outbox(writer, inbox=inbox, job_id="j", worker_id="w", ack=(stream, entry))
    await outbox.emit(Delta(text="a", tokens=1))
    await outbox.flush()
    assert await client.exists(Keys.streamed(inbox, "j")) == 1
    assert 0 < await client.ttl(Keys.streamed(inbox, "j")) <= 60
    await writer.close()


@pytest.mark.anyio
async def test_vanished_inbox_stops_the_job_and_is_not_recreated(redis: tuple[Redis, str]) -> None:
    client, prefix = redis
    inbox, stream, entry = await setup(client, prefix)
    await client.delete(inbox)
    writer = InboxWriter(client, marker_ttl_s=60, window_s=0.001)
    writer.start()
    outbox = Outbox(writer, inbox=inbox, job_id="j", worker_id="w", ack=(stream, entry))
    with pytest.raises(GatewayGone):
        await outbox.emit(Completed(finish_reasons=("stop",), prompt_tokens=1, completion_tokens=0))
    assert await client.exists(inbox) == 0
    await writer.close()


@pytest.mark.anyio
async def test_cancel_flag_stops_the_job_at_its_next_write(redis: tuple[Redis, str]) -> None:
    client, prefix = redis
    inbox, stream, entry = await setup(client, prefix)
    await client.set(Keys.cancel_flag(inbox, "j"), b"1", ex=60)
    writer = InboxWriter(client, marker_ttl_s=60, window_s=0.001)
    writer.start()
    stopped: list[BaseException] = []
    outbox = Outbox(writer, inbox=inbox, job_id="j", worker_id="w", ack=(stream, entry), on_stop=stopped.append)
    await outbox.emit(Started(backend="b", engine="sim"))
    with pytest.raises(JobCancelled):
        await outbox.flush()
    assert isinstance(stopped[0], JobCancelled)
    await writer.close()


@pytest.mark.anyio
async def test_one_tick_serves_many_jobs_on_two_inboxes_each_with_its_own_outcome(redis: tuple[Redis, str]) -> None:
    client, prefix = redis
    keys = Keys(prefix, 1)
    live, gone = keys.inbox("gw1"), keys.inbox("gw2")
    await client.xadd(live, {"hello": "1"})
    await client.expire(live, 60)
    await client.set(Keys.cancel_flag(live, "c"), b"1", ex=60)
    writer = InboxWriter(client, marker_ttl_s=60, window_s=0.05)
    writer.start()
    outboxes = {job: Outbox(writer, inbox=live if job != "g" else gone, job_id=job, worker_id="w", ack=("s", "0-1"))
                for job in ("a", "b", "c", "g")}
    for box in outboxes.values():
        await box.emit(Delta(text="x", tokens=0))
    outcomes = {}
    for job, box in outboxes.items():
        try:
            await box.flush()
            outcomes[job] = "written"
        except (GatewayGone, JobCancelled) as exc:
            outcomes[job] = type(exc).__name__
    await writer.close()
    assert outcomes == {"a": "written", "b": "written", "c": "JobCancelled", "g": "GatewayGone"}
    assert writer.pipelines == 1, "the four batches shared one round trip"
    jobs = [f[b"j"] for _, f in await client.xrange(live) if b"j" in f]
    assert jobs == [b"a", b"b", b"c"]
    assert await client.exists(gone) == 0


@pytest.mark.anyio
async def test_a_lost_script_cache_is_reloaded_and_nothing_is_lost(redis: tuple[Redis, str]) -> None:
    client, prefix = redis
    inbox, stream, entry = await setup(client, prefix)
    writer = InboxWriter(client, marker_ttl_s=60, window_s=0.001)
    writer._emit.sha = "0" * 40  # what EVALSHA meets after a Redis restart or failover: NOSCRIPT
    writer.start()
    outbox = Outbox(writer, inbox=inbox, job_id="j", worker_id="w", ack=(stream, entry))
    await outbox.emit(Delta(text="a", tokens=1))
    await outbox.emit(Completed(finish_reasons=("stop",), prompt_tokens=1, completion_tokens=1))
    await writer.close()
    events = [e for _, f in await client.xrange(inbox) if b"e" in f for e in decode_events(f[b"e"])]
    assert [type(e) for e in events] == [Delta, Completed]
    assert outbox.acked
    assert await client.xlen(stream) == 0


@pytest.mark.anyio
async def test_a_terminal_event_that_could_not_be_written_is_not_acknowledged(redis: tuple[Redis, str]) -> None:
    client, prefix = redis
    inbox, stream, entry = await setup(client, prefix)
    await client.delete(inbox)
    await client.set(inbox, b"not a stream", ex=60)  # the XADD in the script fails (WRONGTYPE)
    writer = InboxWriter(client, marker_ttl_s=60, window_s=0.001)
    writer.start()
    outbox = Outbox(writer, inbox=inbox, job_id="j", worker_id="w", ack=(stream, entry))
    with pytest.raises(InboxUnreachable):
        await outbox.emit(Completed(finish_reasons=("stop",), prompt_tokens=1, completion_tokens=0))
    await writer.close()
    assert not outbox.acked
    pending = await client.xpending(stream, GROUP)
    assert pending["pending"] == 1, "left for redelivery, not acknowledged"
    assert await client.xlen(stream) == 1


@pytest.mark.anyio
async def test_redis_lost_before_the_acknowledgement_keeps_the_streamed_marker(
        redis: tuple[Redis, str], monkeypatch: pytest.MonkeyPatch) -> None:
    """Redis goes away between the terminal event's EMIT and its acknowledgement: the job stays pending with its
    streamed marker, so a reclaim fails it instead of running it again."""
    client, prefix = redis
    inbox, stream, entry = await setup(client, prefix)
    execute = Pipeline.execute

    async def unreachable_for_acks(self: Pipeline, raise_on_error: bool = True) -> list[Any]:
        if any(cmd[0][0] == "XACK" for cmd in self.command_stack):
            raise RedisConnectionError("connection lost")
        return await execute(self, raise_on_error)

    monkeypatch.setattr(Pipeline, "execute", unreachable_for_acks)
    writer = InboxWriter(client, marker_ttl_s=60, window_s=0.001)
    writer.start()
    outbox = Outbox(writer, inbox=inbox, job_id="j", worker_id="w", ack=(stream, entry))
    await outbox.emit(Delta(text="a", tokens=1))
    with pytest.raises(InboxUnreachable):
        await outbox.emit(Completed(finish_reasons=("stop",), prompt_tokens=1, completion_tokens=1))
    await writer.close()
    events = [e for _, f in await client.xrange(inbox) if b"e" in f for e in decode_events(f[b"e"])]
    assert isinstance(events[-1], Completed), "the terminal event reached the gateway"
    assert not outbox.acked
    assert (await client.xpending(stream, GROUP))["pending"] == 1
    assert await client.exists(Keys.streamed(inbox, "j")) == 1
