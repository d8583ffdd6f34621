"""The Lua scripts: each one is a check-and-act that must not interleave with other clients."""

from __future__ import annotations

from typing import Any

from redis.commands.core import AsyncScript
from redis.exceptions import NoScriptError

from dispatch.redis.connection import RedisClient, pipelines_scripts

# KEYS: Keys.queue_keys (N job streams, N fair sets, payloads, tags, bell, idle stack, room). ARGV: 1 index of the
# target band (1 = highest, as in KEYS), 2 max waiting, 3 job payload, 4 ttl (s), 5 group, 6 job id, 7 tenant.
# Waiting = fair-set members plus stream entries not yet delivered (length minus pending: acked entries are
# deleted; stream entries only wait there if a take failed half-way). The job is tagged for fair queueing
# (dispatch/fair.py) and waits in its band's set until a worker's TAKE moves it to the stream.
# The bells: the shared one wakes the idle worker that has waited longest (Redis serves BLPOP first come, first
# served), the coldest process. So the top of the idle stack, the worker that became idle last, gets its own bell
# instead (Keys.worker_bell; its name built here from the shared bell's, same slot); the shared bell rings only
# when no worker is idle. Not both: a second, cold worker woken for nothing took CPU from the warm one (measured,
# docs/performance.md). A worker that died while idle leaves its id on the stack; the one job whose submit pops it
# waits until another idle worker's BLPOP times out and its TAKE runs (block_ms at most). Own bells expire within
# a minute: a live worker pops its own at once. Before both, ``dispatch.pack``: a worker that holds jobs and has
# room left (the room set; its score the jobs it still takes before the next worker gets any) is rung first, the
# one with the least room, and its room is reserved here (its own next update sets it right); so at moderate load
# jobs fill a few workers instead of spreading over all of them (each worker's event loop, and each Redis write,
# then carries more streams per wake-up: docs/dispatch-redis.md). A dead worker's place there delays at most the
# few jobs its room had left, by block_ms each. ``dispatch.local``: ARGV 8, when not empty, is the consumer id of
# a worker in the submitting gateway's own process that has already started the job (dispatch/redis/local.py);
# with nothing waiting in any band, the job goes straight into its band's stream and into that consumer's pending
# list (as TAKE would put it there), no bell rung, so it is heartbeated, reclaimed and acknowledged like any taken
# job. With jobs waiting it queues as usual (the local start is withdrawn): the tenants' fair order stands.
# Returns {1, tag, how: 0 shared bell, 1 an idle worker's own (warm), 2 a packing worker's own, 3 taken by the local
# consumer, then the entry id} or {0, waiting}.
SUBMIT = """
local n = (#KEYS - 5) / 2
local waiting = 0
for i = 1, n do
  local len = redis.call('XLEN', KEYS[i])
  if len > 0 then
    local ok, pending = pcall(redis.call, 'XPENDING', KEYS[i], ARGV[5])
    if ok and type(pending) == 'table' then len = len - pending[1] end
    waiting = waiting + len
  end
  waiting = waiting + redis.call('ZCARD', KEYS[n + i])
end
if waiting >= tonumber(ARGV[2]) then return {0, waiting} end
local band = ARGV[1]
local queue, payloads, tags, bell = KEYS[n + tonumber(band)], KEYS[2 * n + 1], KEYS[2 * n + 2], KEYS[2 * n + 3]
local v = tonumber(redis.call('HGET', tags, 'v:' .. band) or '0')
local tfield = 't:' .. band .. ':' .. ARGV[7]
local last = tonumber(redis.call('HGET', tags, tfield) or '0')
local tag = math.max(v, last) + 1
redis.call('HSET', tags, tfield, tag)
local stream = KEYS[tonumber(band)]
if waiting == 0 and ARGV[8] and ARGV[8] ~= '' then
  local id = redis.call('XADD', stream, '*', 'job', ARGV[3])
  local ok, res = pcall(redis.call, 'XREADGROUP', 'GROUP', ARGV[5], ARGV[8], 'COUNT', 1, 'STREAMS', stream, '>')
  if ok and res and res[1][2][1] and res[1][2][1][1] == id then
    redis.call('HSET', tags, 'v:' .. band, tag)
    redis.call('LREM', KEYS[2 * n + 4], 0, ARGV[8])
    for _, key in ipairs({stream, tags}) do redis.call('EXPIRE', key, ARGV[4]) end
    return {1, tag, 3, id}
  end
  -- No consumer group yet (a Redis restart before the workers' next take): queue it as any other job.
  redis.call('XDEL', stream, id)
end
redis.call('HSET', payloads, ARGV[6], ARGV[3])
redis.call('ZADD', queue, tag, ARGV[6])
local warm = 0
local room = KEYS[2 * n + 5]
local top = redis.call('ZRANGEBYSCORE', room, '(0', '+inf', 'LIMIT', 0, 1)[1]
if top then
  if tonumber(redis.call('ZINCRBY', room, -1, top)) <= 0 then redis.call('ZREM', room, top) end
  warm = 2
else
  top = redis.call('LPOP', KEYS[2 * n + 4])
  if top then warm = 1 end
end
if top then
  local own = bell .. ':w:' .. top
  redis.call('LPUSH', own, '1')
  redis.call('LTRIM', own, 0, 7)
  redis.call('EXPIRE', own, 60)
else
  redis.call('LPUSH', bell, '1')
  redis.call('LTRIM', bell, 0, 63)
  redis.call('EXPIRE', bell, ARGV[4])
end
for _, key in ipairs({queue, payloads, tags}) do redis.call('EXPIRE', key, ARGV[4]) end
return {1, tag, warm}
"""

# KEYS: Keys.queue_keys. ARGV: 1 group, 2 consumer, 3 count, 4 stream ttl (s). Band by band, highest first
# (a lower band is only touched when the higher ones are empty): moves the lowest-tagged waiting jobs into the
# band's stream and reads them as this consumer in the same script, so a job is always either waiting or in
# the pending list, never lost between the two. A consumer that took a job is no longer idle: it leaves the idle
# stack. Returns {{stream, id, fields}, ...}.
TAKE = """
local n = (#KEYS - 5) / 2
local payloads, tags, bell = KEYS[2 * n + 1], KEYS[2 * n + 2], KEYS[2 * n + 3]
local want = tonumber(ARGV[3])
local out = {}
local left = 0
for i = 1, n do
  if want > 0 then
    local stream, queue = KEYS[i], KEYS[n + i]
    local popped = redis.call('ZPOPMIN', queue, want)
    for j = 1, #popped, 2 do
      local payload = redis.call('HGET', payloads, popped[j])
      if payload then
        redis.call('HDEL', payloads, popped[j])
        redis.call('XADD', stream, '*', 'job', payload)
      end
      redis.call('HSET', tags, 'v:' .. i, popped[j + 1])
    end
    if #popped > 0 then redis.call('EXPIRE', stream, ARGV[4]) end
    local res = redis.call('XREADGROUP', 'GROUP', ARGV[1], ARGV[2], 'COUNT', want, 'STREAMS', stream, '>')
    if res then
      for _, e in ipairs(res[1][2]) do
        table.insert(out, {stream, e[1], e[2]})
        want = want - 1
      end
    end
  end
  left = left + redis.call('ZCARD', KEYS[n + i])
end
if left == 0 then redis.call('DEL', bell) end
if #out > 0 then redis.call('LREM', KEYS[2 * n + 4], 0, ARGV[2]) end
return out
"""

# KEYS: 1 the idle stack. ARGV: 1 worker id, 2 ttl (s), 3 ``top`` or ``keep``. ``top``: the worker has just become
# idle (its last job ended), so it is the warmest: to the top, once. ``keep``: an idle worker about to block again
# (every dispatch.block_ms): on the stack if missing (a submit popped it but another worker took the job), at the
# bottom, without moving it if present; its TTL refreshed. The stack holds live workers' ids only as long as they
# keep blocking: a dead worker's id is popped by the next submit or expires.
IDLE = """
if ARGV[3] == 'top' then
  redis.call('LREM', KEYS[1], 0, ARGV[1])
  redis.call('LPUSH', KEYS[1], ARGV[1])
elseif not redis.call('LPOS', KEYS[1], ARGV[1]) then
  redis.call('RPUSH', KEYS[1], ARGV[1])
end
redis.call('LTRIM', KEYS[1], 0, 1023)
redis.call('EXPIRE', KEYS[1], ARGV[2])
return 1
"""

# KEYS: 1 job stream. ARGV: 1 group, 2 consumer, 3.. entry ids the worker runs. Resets their idle time (the
# heartbeat) only where this worker still owns them; returns the ids another worker claimed meanwhile. An id
# no longer pending at all was just acknowledged: neither refreshed nor reported.
HEARTBEAT = """
local lost = {}
for i = 3, #ARGV do
  local p = redis.call('XPENDING', KEYS[1], ARGV[1], ARGV[i], ARGV[i], 1)
  if p[1] then
    if p[1][2] == ARGV[2] then
      redis.call('XCLAIM', KEYS[1], ARGV[1], ARGV[2], 0, ARGV[i], 'JUSTID')
    else
      table.insert(lost, ARGV[i])
    end
  end
end
return lost
"""

# KEYS: 1 job stream. ARGV: 1 group, 2 consumer, 3 min idle (ms), 4 count. XAUTOCLAIM plus each entry's
# delivery count (XAUTOCLAIM does not return it). Returns {{id, fields, deliveries}, ...}.
RECLAIM = """
local r = redis.call('XAUTOCLAIM', KEYS[1], ARGV[1], ARGV[2], ARGV[3], '0-0', 'COUNT', ARGV[4])
local out = {}
for _, e in ipairs(r[2]) do
  local p = redis.call('XPENDING', KEYS[1], ARGV[1], e[1], e[1], 1)
  local n = 1
  if p[1] then n = p[1][4] end
  table.insert(out, {e[1], e[2], n})
end
return out
"""


# KEYS: 1 a gateway's inbox, then per batch (job) i: 2i its cancel flag, 2i+1 its streamed marker (all in the
# gateway's slot). ARGV: 1 marker ttl (s), then per batch 4 values: job id, worker id, msgpack events, and 1 to set
# the streamed marker first (the batch holds the job's first token) or 0. One call per inbox carries every batch a
# worker has for it, instead of an EXISTS and an XADD each: at 64 running jobs that is 20-23 instead of 43-46 µs
# of the worker's CPU per batch (bench/inbox_writer.py). NOMKSTREAM: a vanished inbox is never recreated (it would
# have no TTL and no reader). Returns per batch: 1 written, 0 no inbox (its gateway is gone), 2 written but the
# job is cancelled. A job's keys are deleted with its acknowledgement, not here (see InboxWriter).
EMIT = """
local ttl = ARGV[1]
local out = {}
for i = 1, (#ARGV - 1) / 4 do
  local a = (i - 1) * 4 + 1
  -- Before the XADD: a failure in between errs on the safe side (the job counts as streamed).
  if ARGV[a + 4] == '1' then redis.call('SET', KEYS[2 * i + 1], '1', 'EX', ttl) end
  local cancelled = redis.call('EXISTS', KEYS[2 * i])
  local id = redis.call('XADD', KEYS[1], 'NOMKSTREAM', '*', 'j', ARGV[a + 1], 'w', ARGV[a + 2], 'e', ARGV[a + 3])
  if not id then out[i] = 0 elseif cancelled == 1 then out[i] = 2 else out[i] = 1 end
end
return out
"""


class Scripts:
    def __init__(self, redis: RedisClient) -> None:
        self.submit: AsyncScript = redis.register_script(SUBMIT)
        self.take: AsyncScript = redis.register_script(TAKE)
        self.heartbeat: AsyncScript = redis.register_script(HEARTBEAT)
        self.reclaim: AsyncScript = redis.register_script(RECLAIM)
        self.idle: AsyncScript = redis.register_script(IDLE)


async def take_when_rung(redis: RedisClient, scripts: Scripts, queue_keys: list[str], bells: list[str],
                         timeout_s: float, take_args: list[str | int],
                         idle: list[str | int] | None = None) -> list[Any]:
    """Wait up to ``timeout_s`` for one of the ``bells`` (the worker's own first, then the shared one), then
    TAKE: both in one pipeline, after the IDLE script with ``idle`` as its ARGV when given (the worker has no
    job: it stays on the idle stack while it waits).

    Redis runs a command queued behind a blocking one as soon as that one returns, so an idle worker gets a new
    job in the same reply as the bell, not one round trip later (on a VM each wake-up of an idle process costs
    a few hundred µs). When the wait times out, the TAKE runs anyway and usually finds nothing. On a Redis
    Cluster they are separate calls."""
    idle_key = queue_keys[-2]
    if not pipelines_scripts(redis):
        if idle is not None:
            await scripts.idle(keys=[idle_key], args=idle)
        await redis.blpop(bells, timeout=timeout_s)
        return list(await scripts.take(keys=queue_keys, args=take_args) or [])
    try:
        async with redis.pipeline(transaction=False) as pipe:
            # EVALSHA, not the Script objects: a pipeline holding a Script sends SCRIPT EXISTS first, every
            # time, which is the round trip this saves.
            if idle is not None:
                pipe.evalsha(scripts.idle.sha, 1, idle_key, *idle)
            pipe.blpop(bells, timeout=timeout_s)
            pipe.evalsha(scripts.take.sha, len(queue_keys), *queue_keys, *take_args)
            replies = await pipe.execute()
        rows = replies[-1]
    except NoScriptError:
        # Redis lost its script cache (a restart, a failover): the Script objects load them again. The BLPOP
        # ran (a pipeline's commands all run), so this takes at once.
        if idle is not None:
            await scripts.idle(keys=[idle_key], args=idle)
        rows = await scripts.take(keys=queue_keys, args=take_args)
    return list(rows or [])
