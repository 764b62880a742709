-- purge_expired.lua: removes up to `max` expired results, up to `max` expired locks, up to
-- `max` lapsed revocations and every result waiter whose wait ended: each a range read of an
-- expiry index, never a read of every lock or revocation. Stores from before the lock and
-- revocation indexes are moved over a bounded part per call: 100 names of the old P:locks set,
-- and the old revocations 100 at a time by HSCAN (its cursor kept in P:revoked-scan until
-- done).
-- KEYS: none (see common.lua)
-- ARGV[3]: max
-- Returns: how many results and locks were removed.
local max = tonumber(ARGV[3])
local removed = 0
local ids = redis.call('ZRANGEBYSCORE', RESULT_EXP, '-inf', NOW, 'LIMIT', 0, max)
delete_results(ids)
removed = removed + #ids
redis.call('ZREMRANGEBYSCORE', WAITERS, '-inf', NOW)

local lock_exp = P .. ':lock-exp'
for _, name in ipairs(redis.call('ZRANGEBYSCORE', lock_exp, '-inf', NOW, 'LIMIT', 0, max)) do
  local lk = P .. ':lock:' .. name
  local x = redis.call('HGET', lk, 'x')
  -- An expiry that is not a number counts as past.
  if x and (stamp(x) or NOW) <= NOW then
    redis.call('DEL', lk)
    removed = removed + 1
  end
  redis.call('ZREM', lock_exp, name)
end
local old_locks = P .. ':locks'
for _, name in ipairs(redis.call('SPOP', old_locks, 100)) do
  local lk = P .. ':lock:' .. name
  local x = redis.call('HGET', lk, 'x')
  if x and (stamp(x) or NOW) > NOW then
    redis.call('ZADD', lock_exp, format('%d', stamp(x)), name)
  elseif x then
    redis.call('DEL', lk)
    removed = removed + 1
  end
end

local rev, rev_exp = P .. ':revoked', P .. ':revoked-exp'
local function lapsed(v)
  local until_ms = v and string.match(v, '^(%d*)|')
  return until_ms and until_ms ~= '' and tonumber(until_ms) <= NOW
end
for _, field in ipairs(redis.call('ZRANGEBYSCORE', rev_exp, '-inf', NOW, 'LIMIT', 0, max)) do
  if lapsed(redis.call('HGET', rev, field)) then redis.call('HDEL', rev, field) end
  redis.call('ZREM', rev_exp, field)
end
local scan = P .. ':revoked-scan'
local cursor = redis.call('GET', scan)
-- A cursor that is not one (HSCAN would fail on it) starts the scan again.
if cursor and not string.match(cursor, '^%d+$') then cursor = nil end
if cursor ~= '0' and redis.call('EXISTS', rev) == 1 then
  local page = redis.call('HSCAN', rev, cursor or '0', 'COUNT', 100)
  local kv = page[2]
  for i = 1, #kv, 2 do
    local until_ms = string.match(kv[i + 1], '^(%d*)|')
    if until_ms and until_ms ~= '' then
      if tonumber(until_ms) <= NOW then
        redis.call('HDEL', rev, kv[i])
      else
        redis.call('ZADD', rev_exp, until_ms, kv[i])
      end
    end
  end
  redis.call('SET', scan, page[1])
end
return removed
