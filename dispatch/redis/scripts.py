"""The Lua scripts: each one is a check-and-act that must not interleave with other clients."""

from __future__ import annotations

from redis.commands.core import AsyncScript

from dispatch.redis.connection import RedisClient

# KEYS: the backend's job streams (any order). ARGV: 1 index of the target stream in KEYS, 2 max waiting,
# 3 job payload, 4 stream ttl (s), 5 group. Waiting = entries not yet delivered to a worker (length minus
# pending: acked entries are deleted). Returns {1, entry id} or {0, waiting}.
SUBMIT = """
local waiting = 0
for _, key in ipairs(KEYS) do
  local len = redis.call('XLEN', key)
  if len > 0 then
    local ok, pending = pcall(redis.call, 'XPENDING', key, ARGV[5])
    if ok and type(pending) == 'table' then len = len - pending[1] end
    waiting = waiting + len
  end
end
if waiting >= tonumber(ARGV[2]) then return {0, waiting} end
local target = KEYS[tonumber(ARGV[1])]
local id = redis.call('XADD', target, '*', 'job', ARGV[3])
redis.call('EXPIRE', target, ARGV[4])
return {1, id}
"""

# KEYS: job streams, highest band first. ARGV: 1 group, 2 consumer, 3 count. Reads new entries band by band so
# a lower band is only touched when the higher ones are empty. Returns {{stream, id, fields}, ...}.
TAKE = """
local want = tonumber(ARGV[3])
local out = {}
for _, key in ipairs(KEYS) do
  if want <= 0 then break end
  local res = redis.call('XREADGROUP', 'GROUP', ARGV[1], ARGV[2], 'COUNT', want, 'STREAMS', key, '>')
  if res then
    for _, e in ipairs(res[1][2]) do
      table.insert(out, {key, e[1], e[2]})
      want = want - 1
    end
  end
end
return out
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


class Scripts:
    def __init__(self, redis: RedisClient) -> None:
        self.submit: AsyncScript = redis.register_script(SUBMIT)
        self.take: AsyncScript = redis.register_script(TAKE)
        self.heartbeat: AsyncScript = redis.register_script(HEARTBEAT)
        self.reclaim: AsyncScript = redis.register_script(RECLAIM)
