"""Every Redis command the dispatch sends stays within one Cluster slot, checked on what it really sends.

A gateway and a worker run jobs through every path (served, cancelled, reclaimed, dead-lettered, handed back
on shutdown, status) against the test Redis while ``MONITOR`` records each command. Redis itself says which
arguments are keys (``COMMAND GETKEYS``); their slots are computed with redis-py's ``key_slot``. Per command
(pipelines are split per command on a Cluster), per MULTI/EXEC block and per script they must be one slot,
and scripts may only touch the keys they declare. A Cluster refuses anything else (CROSSSLOT).
"""

from __future__ import annotations

import asyncio
import os
import re
import threading
import time
import uuid
from collections.abc import AsyncIterator

import pytest
import redis
from redis.crc import key_slot

from backends.events import Completed, Event, Failed
from backends.request import GenerationRequest
from backends.sim.engine import SimBackend
from backends.sim.options import SimOptions
from dispatch.job import Job
from dispatch.redis import RedisDispatcher, RedisWorker
from dispatch.redis.keys import GROUP, Keys
from dispatch.redis.ticket import RedisTicket
from gateway.config.redis_target import parse_url
from gateway.config.schema import DispatchConfig
from observability.telemetry import Telemetry

URL = os.environ.get("LOCKGATE_TEST_REDIS_URL", "redis://127.0.0.1:6379/9")
DONE = "lockgate-slot-test-done"
_LINE = re.compile(r"^[\d.]+ \[(\d+) ([^\]]*)\] (.*)$", re.S)

pytestmark = pytest.mark.anyio


def split_args(text: str) -> list[bytes]:
    """The quoted, escaped arguments of one MONITOR line."""
    args: list[bytes] = []
    i = 0
    while i < len(text):
        if text[i] != '"':
            i += 1
            continue
        out = bytearray()
        i += 1
        while text[i] != '"':
            if text[i] == "\\":
                nxt = text[i + 1]
                if nxt == "x":
                    out.append(int(text[i + 2:i + 4], 16))
                    i += 4
                    continue
                out += {"n": b"\n", "r": b"\r", "t": b"\t", "a": b"\a", "b": b"\b"}.get(nxt, nxt.encode())
                i += 2
                continue
            out += text[i].encode()
            i += 1
        args.append(bytes(out))
        i += 1
    return args


class Monitor:
    """``MONITOR`` on a connection of its own, in a thread; keeps the commands sent to the test's DB."""

    def __init__(self, url: str) -> None:
        self.client = redis.Redis.from_url(url)
        self.db = int(self.client.connection_pool.connection_kwargs.get("db", 0))
        self.commands: list[tuple[str, list[bytes]]] = []
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> Monitor:
        self._thread.start()
        assert self._ready.wait(5)
        return self

    def __exit__(self, *_: object) -> None:
        self.client.echo(DONE)
        self._thread.join(10)
        self.client.close()

    def _run(self) -> None:
        with self.client.monitor() as monitor:
            self._ready.set()
            while True:
                raw = monitor.connection.read_response()
                line = raw.decode("utf-8", "backslashreplace") if isinstance(raw, bytes) else str(raw)
                m = _LINE.match(line)
                if m is None or int(m.group(1)) != self.db:
                    continue
                args = split_args(m.group(3))
                if args[:2] == [b"ECHO", DONE.encode()]:
                    return
                self.commands.append((m.group(2), args))


def keys_of(client: redis.Redis, args: list[bytes]) -> list[bytes]:
    try:
        return [k if isinstance(k, bytes) else str(k).encode() for k in client.command_getkeys(*args)]
    except redis.ResponseError:  # no key arguments (PING, PUBLISH, MULTI, SCRIPT LOAD...)
        return []


def job(i: int, prompt: str, max_tokens: int = 30) -> Job:
    request = GenerationRequest(request_id=f"r{i}", model="m", operation="text_completion", prompt=prompt,
                                max_tokens=max_tokens, extra={"ignore_eos": True})
    return Job(id=f"j{i}-{uuid.uuid4().hex[:6]}", model="m", backend="sim", request=request,
               enqueued_ns=time.time_ns())


async def drain(ticket: RedisTicket) -> list[Event]:
    return [e async for e in ticket.events()]


@pytest.fixture
async def prefix() -> AsyncIterator[str]:
    name = f"lgs{uuid.uuid4().hex[:8]}"
    yield name
    client = redis.Redis.from_url(URL)
    for key in client.scan_iter(match=f"{name}:*"):
        client.delete(key)
    client.close()


async def run_every_path(prefix: str) -> None:
    # wake="warm": its idle stack and per-worker bells are the paths that touch the most keys.
    config = DispatchConfig(kind="redis", key_prefix=prefix, visibility_timeout_s=0.6, heartbeat_interval_s=0.2,
                            block_ms=200, inbox_ttl_s=0.8, max_deliveries=2, wake="warm")
    target = parse_url(URL)
    telemetry = Telemetry()
    sim = SimBackend("sim", SimOptions(ttft_ms=5, tpot_ms=20, faults_from_prompt=True))
    await sim.start()
    gateway = RedisDispatcher(config, target=target, backends=["sim"], telemetry=telemetry, max_queue_depth=16,
                              retry_after_s=1)
    worker = RedisWorker({"sim": sim}, config, target=target, telemetry=telemetry)
    await gateway.start()
    await worker.start()
    side = redis.Redis.from_url(URL)
    workers = [worker]
    try:
        # Served, long enough for heartbeats and inbox refreshes.
        served = await drain(await gateway.submit(job(1, "served")))
        assert isinstance(served[-1], Completed)
        assert (await gateway.status())["sim"].health.ok
        # Cancelled while running (the gateway's SET + PUBLISH, the worker's abort and ack).
        hung = await gateway.submit(job(2, "[[sim:hang]]"))
        await asyncio.sleep(0.3)
        await hung.cancel()
        await asyncio.sleep(0.3)
        # Taken by a worker that then vanished: reclaimed and re-run, or dead-lettered past max_deliveries.
        await worker.stop()
        workers.remove(worker)
        ghost_once = await gateway.submit(job(3, "ghost once", max_tokens=3))
        ghost_twice = await gateway.submit(job(4, "ghost twice", max_tokens=3))
        stream = f"{prefix}:{{sim}}:jobs:0"
        # A ghost worker takes both the way workers do: the TAKE script moves them from the fair set to the stream.
        taken = await gateway.scripts.take(keys=Keys(prefix, config.priority_bands).queue_keys("sim"),
                                           args=[GROUP, "ghost", 2, int(config.stream_ttl_s)])
        ids = [entry_id.decode() for _, entry_id, _ in taken]
        assert len(ids) == 2, taken
        side.xclaim(stream, GROUP, "ghost", 0, [ids[1]])  # a second delivery of job 4
        worker = RedisWorker({"sim": sim}, config, target=target, telemetry=telemetry)
        workers.append(worker)
        await worker.start()
        assert isinstance((await drain(ghost_once))[-1], Completed)
        dead = await drain(ghost_twice)
        assert isinstance(dead[-1], Failed)
        assert dead[-1].code == "dead_lettered"
        # Running when its worker shuts down with no grace: handed back (XCLAIM ... IDLE).
        handed = await gateway.submit(job(5, "[[sim:hang]]"))
        await asyncio.sleep(0.3)
        await worker.stop(0)
        workers.remove(worker)
        await handed.cancel()
    finally:
        for w in workers:
            if not w._stopping:
                await w.stop()
        await gateway.close()
        await sim.close()
        side.close()


async def test_every_command_stays_in_one_slot(prefix: str) -> None:
    with Monitor(URL) as monitor:
        await run_every_path(prefix)
    client = redis.Redis.from_url(URL)
    ours = [(who, args) for who, args in monitor.commands if any(prefix.encode() in a for a in args)]
    names = {args[0].upper() for _, args in ours}
    # The capture saw every path: enqueue, take, events, acks, heartbeats, reclaims, dead letters, cancels.
    assert {b"EVALSHA", b"XADD", b"XACK", b"XDEL", b"XREADGROUP", b"XREAD", b"SET", b"EXISTS", b"DEL",
            b"XCLAIM", b"XAUTOCLAIM", b"PUBLISH", b"HSET", b"HDEL", b"XTRIM"} <= names, names
    declared: set[bytes] = set()
    blocks: dict[str, list[bytes]] = {}
    problems: list[str] = []
    for who, args in monitor.commands:
        name = args[0].upper() if args else b""
        if name == b"MULTI":
            blocks[who] = []
            continue
        if name == b"EXEC" and who in blocks:
            block = blocks.pop(who)
            if len({key_slot(k) for k in block}) > 1:
                problems.append(f"MULTI/EXEC of {who} crosses slots: {block}")
            continue
        if not any(prefix.encode() in a for a in args):
            continue
        keys = keys_of(client, args)
        if who in blocks:
            blocks[who].extend(keys)
        slots = {key_slot(k) for k in keys}
        if len(slots) > 1:
            problems.append(f"{who}: {name!r} crosses slots {sorted(slots)}: {keys}")
        if name in (b"EVALSHA", b"EVAL"):
            declared.update(keys)
        elif who == "lua" and (undeclared := [k for k in keys if k not in declared and not own_bell(k, declared)]):
            problems.append(f"a script touches keys it did not declare: {undeclared}")
    client.close()
    assert problems == []


def own_bell(key: bytes, declared: set[bytes]) -> bool:
    """The one key a script reaches without declaring it: SUBMIT rings the bell of the worker it pops from the
    idle stack, whose name it only learns inside the script. It extends a declared bell's name after its hash
    tag, so it is in that key's slot, which is what a Redis Cluster node needs to run the script."""
    return any(key.startswith(d + b":w:") and key_slot(key) == key_slot(d) for d in declared if d.endswith(b":bell"))


def test_split_args_reads_monitor_escapes() -> None:
    assert split_args(r'"XADD" "k" "\x81\xa1j" "a\"b" "c\\"') == [b"XADD", b"k", b"\x81\xa1j", b'a"b', b"c\\"]


def test_a_cross_slot_command_would_be_caught() -> None:
    client = redis.Redis.from_url(URL)
    try:
        keys = keys_of(client, [b"DEL", b"lg:{a}:x", b"lg:{b}:y"])
        assert len({key_slot(k) for k in keys}) == 2
    finally:
        client.close()
