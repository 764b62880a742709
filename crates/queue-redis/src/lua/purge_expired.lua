-- purge_expired.lua: removes up to `max` expired results, every expired lock, every lapsed
-- revocation and every result waiter whose wait ended.
-- KEYS: none (see common.lua)
-- ARGV[3]: max
-- Returns: how many results and locks were removed.
local max = tonumber(ARGV[3])
local removed = 0
local ids = redis.call('ZRANGEBYSCORE', RESULT_EXP, '-inf', NOW, 'LIMIT', 0, max)
delete_results(ids)
removed = removed + #ids
redis.call('ZREMRANGEBYSCORE', WAITERS, '-inf', NOW)
local locks = P .. ':locks'
for _, name in ipairs(redis.call('SMEMBERS', locks)) do
  local lk = P .. ':lock:' .. name
  local x = redis.call('HGET', lk, 'x')
  if not x then
    redis.call('SREM', locks, name)
  elseif tonumber(x) <= NOW then
    redis.call('DEL', lk)
    redis.call('SREM', locks, name)
    removed = removed + 1
  end
end
local rev = P .. ':revoked'
local all = redis.call('HGETALL', rev)
for i = 1, #all, 2 do
  local until_ms = string.match(all[i + 1], '^(%d*)|')
  if until_ms and until_ms ~= '' and tonumber(until_ms) <= NOW then
    redis.call('HDEL', rev, all[i])
  end
end
return removed
