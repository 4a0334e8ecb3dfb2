"""The Lua scripts of `RedisSessionService`: each write is one of these, run atomically.

Layout (``P`` is the key prefix, ``A``/``U``/``S`` the escaped app, user and session ids; every
key of a user's sessions carries the hash tag ``{A:U}``, so one script touches one shard):

- ``P{A:U}:s:S``  hash: ``gen`` ``rev`` (the revision marker is ``gen:rev``), ``ut`` (last update,
  ``%.17g``), ``ct``, ``last`` (last event id), ``app`` ``user`` ``id`` (the raw ids), ``exp``
  and ``sl`` (expiry time, sliding ttl), and ``=key`` -> JSON for each session state key.
- ``P{A:U}:e:S``  list: the events' JSON, in stored order.
- ``P{A:U}:t:S``  sorted set: event id scored by its timestamp (duplicates, after_timestamp).
- ``P{A:U}:idx``  sorted set: session id scored by last update (list_sessions of one user).
- ``P{A:U}:user`` hash: user state.
- ``P{A}:idx``    sorted set: ``user NUL session`` scored by last update (list_sessions of all).
- ``P{A}:app``    hash: app state.

Times travel as strings written with ``%.17g`` (Lua's own ``tostring`` keeps 14 digits), so a
float read back is the float written. Scripts return strings only: redis-py turns a Lua number
into an int.
"""

from __future__ import annotations

__all__ = ["APPEND", "APP_SIDE", "CREATE", "DELETE", "DELETE_USER", "GET", "LIST_EVENTS", "TRIM"]

_COMMON = r"""
local function fmt(x) return string.format('%.17g', x) end
-- The time just after `last`: what Python's max(last + 1e-6, nextafter(last, inf)) gives.
local function just_after(last)
  local t = last + 1e-6
  if t > last then return t end
  local _, e = math.frexp(last)
  return last + 2 ^ (e - 53)
end
local function expire_keys(s, keys)
  local exp = redis.call('HGET', s, 'exp')
  if exp then
    local ms = string.format('%d', math.ceil(tonumber(exp) * 1000))
    for _, k in ipairs(keys) do redis.call('PEXPIREAT', k, ms) end
  end
end
local function live(s, clock)
  if redis.call('EXISTS', s) == 0 then return false end
  local exp = redis.call('HGET', s, 'exp')
  return not (exp and tonumber(exp) <= clock)
end
local function marker(s)
  local m = redis.call('HMGET', s, 'gen', 'rev')
  return m[1] .. ':' .. m[2]
end
-- Applies `count` field/value pairs from ARGV starting at `i` to hash `h` (field prefix `p`).
local function apply(h, p, i, count)
  for _ = 1, count do
    redis.call('HSET', h, p .. ARGV[i], ARGV[i + 1])
    i = i + 2
  end
  return i
end
"""

CREATE = (
    _COMMON
    + r"""
-- KEYS: s e t uidx ustate [aidx astate]
-- ARGV: clock now gen exist_ok exp sl expiry_mode sid member app user ns nu na pairs...
local s, e, t = KEYS[1], KEYS[2], KEYS[3]
local uidx, ustate, aidx, astate = KEYS[4], KEYS[5], KEYS[6], KEYS[7]
local clock, now = tonumber(ARGV[1]), ARGV[2]
local sid, member = ARGV[8], ARGV[9]
local old_exp = redis.call('HGET', s, 'exp')
if old_exp and tonumber(old_exp) <= clock then
  -- Expired for the service's clock: its id starts a new session.
  redis.call('DEL', s, e, t)
  redis.call('ZREM', uidx, sid)
  if aidx then redis.call('ZREM', aidx, member) end
end
local exists = redis.call('EXISTS', s) == 1
if exists and ARGV[4] == '0' then return {'exists'} end
local ns, nu, na = tonumber(ARGV[12]), tonumber(ARGV[13]), tonumber(ARGV[14])
local ut
if exists then
  ut = redis.call('HGET', s, 'ut')
  if ns + nu + na > 0 then
    redis.call('HINCRBY', s, 'rev', 1)
    if tonumber(now) > tonumber(ut) then ut = now end
    redis.call('HSET', s, 'ut', ut)
  end
else
  ut = now
  redis.call('HSET', s, 'gen', ARGV[3], 'rev', '0', 'ut', now, 'ct', now,
    'app', ARGV[10], 'user', ARGV[11], 'id', sid)
end
local i = apply(s, '=', 15, ns)
i = apply(ustate, '', i, nu)
if astate then apply(astate, '', i, na) end
redis.call('ZADD', uidx, ut, sid)
if aidx then redis.call('ZADD', aidx, ut, member) end
-- Expiry: 'set' (given to this call) always; 'default' (the service's ttl) for a new session;
-- a resumed session with a sliding ttl is refreshed.
if ARGV[5] ~= '' and (ARGV[7] == 'set' or not exists) then
  redis.call('HSET', s, 'exp', ARGV[5])
  if ARGV[6] ~= '' then redis.call('HSET', s, 'sl', ARGV[6]) else redis.call('HDEL', s, 'sl') end
elseif exists then
  local sl = redis.call('HGET', s, 'sl')
  if sl then redis.call('HSET', s, 'exp', fmt(clock + tonumber(sl))) end
end
expire_keys(s, {s, e, t})
local events = {}
if exists then events = redis.call('LRANGE', e, 0, -1) end
local app = {}
if astate then app = redis.call('HGETALL', astate) end
return {exists and 'resumed' or 'created', redis.call('HGETALL', s),
  redis.call('HGETALL', ustate), app, events}
"""
)

APPEND = (
    _COMMON
    + r"""
-- KEYS: s e t uidx ustate [aidx astate]
-- ARGV: clock event_id requested_ts body marker local_last on_stale sid member ns nu na pairs...
local s, e, t = KEYS[1], KEYS[2], KEYS[3]
local uidx, ustate, aidx, astate = KEYS[4], KEYS[5], KEYS[6], KEYS[7]
local clock, event_id = tonumber(ARGV[1]), ARGV[2]
if not live(s, clock) then return {'missing'} end
if redis.call('ZSCORE', t, event_id) then
  local rank = redis.call('ZRANK', t, event_id)
  return {'duplicate', redis.call('LINDEX', e, rank), redis.call('HGET', s, 'ut'), marker(s)}
end
if ARGV[7] == 'error' then
  if ARGV[5] ~= '' then
    if marker(s) ~= ARGV[5] then return {'stale'} end
  else
    -- A hand-built handle: stale when storage holds an event newer than its own last one.
    local last = redis.call('HGET', s, 'last')
    if last and last ~= ARGV[6] then return {'stale'} end
  end
end
local last_ut = tonumber(redis.call('HGET', s, 'ut'))
local requested = tonumber(ARGV[3])
local ts = ARGV[3]
if not (requested > last_ut) then ts = fmt(just_after(last_ut)) end
redis.call('RPUSH', e, '{"timestamp":' .. ts .. ',' .. ARGV[4])
redis.call('ZADD', t, ts, event_id)
local rev = redis.call('HINCRBY', s, 'rev', 1)
redis.call('HSET', s, 'ut', ts, 'last', event_id)
local ns, nu, na = tonumber(ARGV[10]), tonumber(ARGV[11]), tonumber(ARGV[12])
local i = apply(s, '=', 13, ns)
i = apply(ustate, '', i, nu)
if astate then apply(astate, '', i, na) end
redis.call('ZADD', uidx, ts, ARGV[8])
if aidx then redis.call('ZADD', aidx, ts, ARGV[9]) end
local sl = redis.call('HGET', s, 'sl')
if sl then redis.call('HSET', s, 'exp', fmt(clock + tonumber(sl))) end
expire_keys(s, {s, e, t})
return {'ok', ts, redis.call('HGET', s, 'gen') .. ':' .. tostring(rev)}
"""
)

APP_SIDE = r"""
-- Cluster only: the app's keys live on another shard. KEYS: aidx astate
-- ARGV: ut member na pairs... ; the index score only moves forward (another append may have won).
if ARGV[1] ~= '' then redis.call('ZADD', KEYS[1], 'GT', ARGV[1], ARGV[2]) end
local i = 4
for _ = 1, tonumber(ARGV[3]) do
  redis.call('HSET', KEYS[2], ARGV[i], ARGV[i + 1])
  i = i + 2
end
return redis.call('HGETALL', KEYS[2])
"""

GET = (
    _COMMON
    + r"""
-- KEYS: s e t ustate [astate]; ARGV: clock after_timestamp recent
local s, e, t = KEYS[1], KEYS[2], KEYS[3]
if not live(s, tonumber(ARGV[1])) then return {'missing'} end
local n = redis.call('LLEN', e)
local start = 0
if ARGV[2] ~= '' then start = n - redis.call('ZCOUNT', t, ARGV[2], '+inf') end
if ARGV[3] ~= '' then start = math.max(start, n - tonumber(ARGV[3])) end
local events = {}
if start < n then events = redis.call('LRANGE', e, start, -1) end
local app = {}
if KEYS[5] then app = redis.call('HGETALL', KEYS[5]) end
return {'ok', redis.call('HGETALL', s), redis.call('HGETALL', KEYS[4]), app, events}
"""
)

LIST_EVENTS = (
    _COMMON
    + r"""
-- KEYS: s e t; ARGV: clock after_timestamp (exclusive, '' = from the start) limit ('' = all)
local s, e, t = KEYS[1], KEYS[2], KEYS[3]
if not live(s, tonumber(ARGV[1])) then return {'missing'} end
local n = redis.call('LLEN', e)
local start = 0
if ARGV[2] ~= '' then start = n - redis.call('ZCOUNT', t, '(' .. ARGV[2], '+inf') end
local stop = -1
if ARGV[3] ~= '' then stop = start + tonumber(ARGV[3]) end
return {'ok', redis.call('LRANGE', e, start, stop)}
"""
)

DELETE = r"""
-- KEYS: s e t uidx [aidx]; ARGV: sid member
redis.call('DEL', KEYS[1], KEYS[2], KEYS[3])
redis.call('ZREM', KEYS[4], ARGV[1])
if KEYS[5] then redis.call('ZREM', KEYS[5], ARGV[2]) end
return 'ok'
"""

DELETE_USER = r"""
-- KEYS: uidx ustate then s e t of each listed session; ARGV: clock
local clock = tonumber(ARGV[1])
local deleted = 0
for i = 3, #KEYS, 3 do
  if redis.call('EXISTS', KEYS[i]) == 1 then
    local exp = redis.call('HGET', KEYS[i], 'exp')
    if not (exp and tonumber(exp) <= clock) then deleted = deleted + 1 end
  end
  redis.call('DEL', KEYS[i], KEYS[i + 1], KEYS[i + 2])
end
redis.call('DEL', KEYS[1], KEYS[2])
return tostring(deleted)
"""

TRIM = (
    _COMMON
    + r"""
-- KEYS: s e t; ARGV: clock expected_length expected_first_id drop
local s, e, t = KEYS[1], KEYS[2], KEYS[3]
if not live(s, tonumber(ARGV[1])) then return {'missing'} end
local n = redis.call('LLEN', e)
local first = redis.call('ZRANGE', t, 0, 0)[1] or ''
if n ~= tonumber(ARGV[2]) or first ~= ARGV[3] then return {'changed'} end
local drop = tonumber(ARGV[4])
if drop > 0 then
  redis.call('LTRIM', e, drop, -1)
  redis.call('ZREMRANGEBYRANK', t, 0, drop - 1)
end
return {'ok'}
"""
)

PUT = (
    _COMMON
    + r"""
-- migrate-from: writes a whole session, or the events DEST lacks, if DEST is as it was read.
-- KEYS: s e t uidx [aidx]
-- ARGV: expected_len ('-1': must not exist) gen ct ut exp app user sid member ns pairs... ne
--       then (id ts json) per new event
local s, e, t, uidx, aidx = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5]
local expected = tonumber(ARGV[1])
local exists = redis.call('EXISTS', s) == 1
if expected < 0 then
  if exists then return 'changed' end
  redis.call('HSET', s, 'gen', ARGV[2], 'rev', '0', 'ct', ARGV[3],
    'app', ARGV[6], 'user', ARGV[7], 'id', ARGV[8])
else
  if not exists or redis.call('LLEN', e) ~= expected then return 'changed' end
  redis.call('HINCRBY', s, 'rev', 1)
  local flat = redis.call('HKEYS', s)
  for _, f in ipairs(flat) do
    if string.sub(f, 1, 1) == '=' then redis.call('HDEL', s, f) end
  end
end
local i = apply(s, '=', 11, tonumber(ARGV[10]))
local ne = tonumber(ARGV[i])
i = i + 1
local last = nil
for _ = 1, ne do
  redis.call('RPUSH', e, ARGV[i + 2])
  redis.call('ZADD', t, ARGV[i + 1], ARGV[i])
  last = ARGV[i]
  i = i + 3
end
redis.call('HSET', s, 'ut', ARGV[4])
if last then redis.call('HSET', s, 'last', last) end
if ARGV[5] ~= '' then redis.call('HSET', s, 'exp', ARGV[5]) end
redis.call('ZADD', uidx, ARGV[4], ARGV[8])
if aidx then redis.call('ZADD', aidx, ARGV[4], ARGV[9]) end
expire_keys(s, {s, e, t})
return 'ok'
"""
)
