"""The limits of ``limits.RateLimiter`` in Redis: one Lua script per decision, so every gateway sharing the
Redis sees the same buckets and no two admissions interleave.

Keys (``P`` is ``dispatch.key_prefix``; ``{ID}`` is the key id as the Cluster hash tag, so a script touches one
slot): ``P:rl:{ID}`` hash of the two buckets (``r``/``t`` levels, ``at`` the server time in ms of the last
update), expiring once the buckets would be full again; ``P:rl:{ID}:conc`` sorted set of concurrency slots
(request id -> expiry ms), refreshed while the request runs and trimmed of expired slots on every admission,
so a gateway that crashed holds nothing longer than ``tenants.slot_ttl_s``. Times are Redis's own clock
(``TIME``), never a gateway's.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

from redis.commands.core import AsyncScript

from dispatch.redis.connection import REDIS_ERRORS, RedisClient
from gateway.tenants.limits import Admission, Extension, Snapshot, Verdict
from gateway.tenants.records import KeyRecord

log = logging.getLogger("lockgate.tenants")

# Shared head of the scripts: the server's time and both buckets refilled to now. ARGV 1 rpm, 2 tpm (0: none).
_REFILL = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local rpm, tpm = tonumber(ARGV[1]), tonumber(ARGV[2])
local b = redis.call('HMGET', KEYS[1], 'r', 't', 'at')
local elapsed = b[3] and math.max(0, now - tonumber(b[3])) or 0
local function refill(level, cap)
  if cap <= 0 then return 0 end
  if not level then return cap end
  return math.min(cap, tonumber(level) + elapsed * cap / 60000)
end
local r, tk = refill(b[1], rpm), refill(b[2], tpm)
local function save()
  redis.call('HSET', KEYS[1], 'r', tostring(r), 't', tostring(tk), 'at', now)
  local ttl = 1000
  if rpm > 0 then ttl = math.max(ttl, (rpm - r) * 60000 / rpm + 1000) end
  if tpm > 0 then ttl = math.max(ttl, (tpm - tk) * 60000 / tpm + 1000) end
  redis.call('PEXPIRE', KEYS[1], math.ceil(ttl))
end
"""

# KEYS: 1 buckets, 2 slots. ARGV: 1 rpm, 2 tpm, 3 max concurrent (0: none), 4 prompt tokens, 5 lease wanted,
# 6 slot member, 7 slot ttl (ms). Returns {verdict, requests left, tokens left, lease, in flight, wait ms}
# (levels as strings: Lua numbers would reach the client truncated).
ADMIT = _REFILL + """
local maxc, prompt, want = tonumber(ARGV[3]), tonumber(ARGV[4]), tonumber(ARGV[5])
local conc = 0
if maxc > 0 then
  redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', now)
  conc = redis.call('ZCARD', KEYS[2])
end
local verdict, wait, lease = 0, 0, 0
if rpm > 0 and r < 1 then verdict, wait = 1, (1 - r) * 60000 / rpm
elseif tpm > 0 and prompt >= tpm then verdict = 4
elseif tpm > 0 and tk < prompt + 1 then verdict, wait = 2, (prompt + 1 - tk) * 60000 / tpm
elseif maxc > 0 and conc >= maxc then verdict = 3
end
if verdict == 0 then
  if rpm > 0 then r = r - 1 end
  if tpm > 0 then
    tk = tk - prompt
    lease = math.floor(math.min(math.max(tk, 0), want))
    tk = tk - lease
  end
  if maxc > 0 then
    redis.call('ZADD', KEYS[2], now + tonumber(ARGV[7]), ARGV[6])
    redis.call('PEXPIRE', KEYS[2], ARGV[7])
    conc = conc + 1
  end
  save()
end
return {verdict, tostring(r), tostring(tk), lease, conc, math.ceil(wait)}
"""

# KEYS: 1 buckets. ARGV: 1 rpm, 2 tpm, 3 must, 4 want. Returns {granted, tokens left}.
EXTEND = _REFILL + """
local must, want = tonumber(ARGV[3]), tonumber(ARGV[4])
local granted = math.floor(math.min(math.max(tk, 0), must + want))
tk = tk - math.max(granted, must)
save()
return {granted, tostring(tk)}
"""

# KEYS: 1 buckets, 2 slots. ARGV: 1 rpm, 2 tpm, 3 refund, 4 slot member.
SETTLE = _REFILL + """
redis.call('ZREM', KEYS[2], ARGV[4])
if tpm > 0 then tk = math.min(tpm, tk + tonumber(ARGV[3])) end
save()
return 1
"""

# KEYS: 1 slots. ARGV: 1 slot ttl (ms), 2.. members. Pushes the expiry of the slots still held (XX: a slot
# already trimmed is not brought back).
REFRESH = """
local t = redis.call('TIME')
local until_ms = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000) + tonumber(ARGV[1])
for i = 2, #ARGV do redis.call('ZADD', KEYS[1], 'XX', until_ms, ARGV[i]) end
redis.call('PEXPIRE', KEYS[1], ARGV[1])
return 1
"""


class RedisLimiter:
    def __init__(self, redis: RedisClient, prefix: str, slot_ttl_s: float) -> None:
        self._redis = redis
        self._prefix = prefix
        self._slot_ttl_ms = int(slot_ttl_s * 1000)
        self._admit: AsyncScript = redis.register_script(ADMIT)
        self._extend: AsyncScript = redis.register_script(EXTEND)
        self._settle: AsyncScript = redis.register_script(SETTLE)
        self._refresh: AsyncScript = redis.register_script(REFRESH)
        self._held: dict[str, set[str]] = {}
        """Slots this gateway holds, by key id: refreshed until settled."""
        self._refresher: asyncio.Task[None] | None = None

    def _keys(self, key: KeyRecord) -> list[str]:
        bucket = f"{self._prefix}:rl:{{{key.id}}}"
        return [bucket, bucket + ":conc"]

    async def start(self) -> None:
        self._refresher = asyncio.create_task(self._refresh_forever(), name="lockgate-slot-refresh")

    async def close(self) -> None:
        if self._refresher is not None:
            self._refresher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._refresher

    async def admit(self, key: KeyRecord, slot: str, prompt_tokens: int, lease: int) -> Admission:
        reply = await self._admit(keys=self._keys(key), args=[
            key.rpm or 0, key.tpm or 0, key.max_concurrent or 0, prompt_tokens, lease, slot, self._slot_ttl_ms])
        verdict = Verdict(int(reply[0]))
        if verdict is Verdict.OK and key.max_concurrent:
            self._held.setdefault(key.id, set()).add(slot)
        return Admission(verdict, Snapshot(float(reply[1]), float(reply[2]), int(reply[4])), int(reply[3]),
                         int(reply[5]) / 1000)

    async def extend(self, key: KeyRecord, must: int, want: int) -> Extension:
        if not key.tpm:
            return Extension(must + want, 0.0)
        reply = await self._extend(keys=self._keys(key)[:1], args=[key.rpm or 0, key.tpm, must, want])
        return Extension(int(reply[0]), float(reply[1]))

    async def settle(self, key: KeyRecord, slot: str, refund: int) -> None:
        held = self._held.get(key.id)
        if held is not None:
            held.discard(slot)
            if not held:
                del self._held[key.id]
        await self._settle(keys=self._keys(key), args=[key.rpm or 0, key.tpm or 0, refund, slot])

    async def _refresh_forever(self) -> None:
        interval = self._slot_ttl_ms / 3000
        while True:
            await asyncio.sleep(interval)
            try:
                # One call per key with held slots (each key's slots are one slot of a Cluster; a pipelined
                # script would not route there), every slot_ttl/3 s: a few calls a second at most.
                for key_id, slots in list(self._held.items()):
                    bucket = f"{self._prefix}:rl:{{{key_id}}}"
                    await self._refresh(keys=[bucket + ":conc"], args=[self._slot_ttl_ms, *slots])
            except REDIS_ERRORS as exc:
                log.warning("could not refresh concurrency slots: %s", exc)
