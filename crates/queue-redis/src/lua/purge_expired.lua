-- purge_expired.lua: removes what lapsed, one hash tag per call: each a range read of an
-- expiry index, never a read of every result, lock or revocation.
-- KEYS[1]: a key of the queue for "queue" and "outbox", of {~locks} for "locks", of
--   {~revoked} for "revoked" (see common.lua)
-- ARGV[3]: "queue" | "outbox" | "locks" | "revoked"
-- queue: ARGV[4] queue, ARGV[5] max -> how many expired results were removed (at most max);
--   also every result waiter of the queue whose wait ended
-- outbox: ARGV[4] queue, ARGV[5] max, ARGV[6] written before ms -> flat array {id, envelope}
--   of at most max follow-ups left in the queue's outbox since before then (a client that
--   completed their task and died before moving them; see hot.rs). Reads only.
-- locks: ARGV[4] max -> how many expired locks were removed (at most max)
-- revoked: ARGV[4] max -> how many lapsed revocations were removed (at most max)
local op = ARGV[3]

if op == 'queue' then
  local q, max = ARGV[4], tonumber(ARGV[5])
  local k = Q(q)
  local ids = redis.call('ZRANGEBYSCORE', k['result-exp'], '-inf', NOW, 'LIMIT', 0, max)
  delete_results(q, ids)
  redis.call('ZREMRANGEBYSCORE', k['result-waiters'], '-inf', NOW)
  return #ids
end

if op == 'outbox' then
  local q, max, before = ARGV[4], tonumber(ARGV[5]), tonumber(ARGV[6])
  local k = Q(q)
  local out = {}
  if redis.call(EXISTS, k.outbox) == 0 then return out end
  local cursor = '0'
  repeat
    local page = redis.call('HSCAN', k.outbox, cursor, 'COUNT', 100)
    cursor = page[1]
    local kv = page[2]
    for i = 1, #kv, 2 do
      local at, env = match(kv[i + 1], '^(%d+)|()')
      -- An entry that is not one this store wrote moves nothing; it is returned as it is
      -- (the client logs and removes it).
      if not at or tonumber(at) < before then
        out[#out + 1] = kv[i]
        out[#out + 1] = env and sub(kv[i + 1], env) or kv[i + 1]
        if #out >= max * 2 then return out end
      end
    end
  until cursor == '0'
  return out
end

if op == 'locks' then
  local max = tonumber(ARGV[4])
  local removed = 0
  local lock_exp = wide('locks', 'lock-exp')
  for _, name in ipairs(redis.call('ZRANGEBYSCORE', lock_exp, '-inf', NOW, 'LIMIT', 0, max)) do
    local lk = wide('locks', 'lock:' .. name)
    local x = redis.call('HGET', lk, 'x')
    -- An expiry that is not a number counts as past.
    if x and (stamp(x) or NOW) <= NOW then
      redis.call('DEL', lk)
      removed = removed + 1
    end
    redis.call('ZREM', lock_exp, name)
  end
  return removed
end

if op == 'revoked' then
  local max = tonumber(ARGV[4])
  local removed = 0
  local rev, rev_exp = wide('revoked', 'revoked'), wide('revoked', 'revoked-exp')
  for _, field in ipairs(redis.call('ZRANGEBYSCORE', rev_exp, '-inf', NOW, 'LIMIT', 0, max)) do
    local v = redis.call('HGET', rev, field)
    local until_ms = v and match(v, '^(%d*)|')
    if until_ms and until_ms ~= '' and tonumber(until_ms) <= NOW then
      redis.call('HDEL', rev, field)
      removed = removed + 1
    end
    redis.call('ZREM', rev_exp, field)
  end
  return removed
end
return redis.error_reply('unknown purge operation ' .. op)
