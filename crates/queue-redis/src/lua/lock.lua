-- lock.lua: takes, releases or flushes named locks with an owner and an expiry; stores and
-- removes revocations (store-wide control state, kept with its expiry index).
-- KEYS: none (see common.lua)
-- ARGV[3]: "acquire" | "release" | "flush" | "revoke" | "restore"
-- acquire: ARGV[4] name, ARGV[5] owner, ARGV[6] expiry ms, ARGV[7] real pexpire ms -> 1 | 0
-- release: ARGV[4] name, ARGV[5] owner -> 1 | 0
-- flush: -> how many locks there were
-- revoke: ARGV[4] field ("i:<id>" | "t:<name>"), ARGV[5] value ("<until ms>|<once>"),
--   ARGV[6] until ms or "" -> 1
-- restore: ARGV[4] field -> 1 if it was there
--
-- Each lock's expiry is indexed in P:lock-exp (name -> expiry ms) and each revocation with an
-- end in P:revoked-exp (field -> until ms), so purge_expired.lua finds what lapsed with a
-- bounded range read instead of reading every lock and revocation. P:locks (a set of names)
-- is the index of stores from before; purge_expired.lua moves it over.
local op = ARGV[3]
local locks = P .. ':locks'
local lock_exp = P .. ':lock-exp'
local revoked, revoked_exp = P .. ':revoked', P .. ':revoked-exp'
if op == 'revoke' then
  redis.call('HSET', revoked, ARGV[4], ARGV[5])
  if ARGV[6] == '' then
    redis.call('ZREM', revoked_exp, ARGV[4])
  else
    redis.call('ZADD', revoked_exp, ARGV[6], ARGV[4])
  end
  return 1
end
if op == 'restore' then
  redis.call('ZREM', revoked_exp, ARGV[4])
  return redis.call('HDEL', revoked, ARGV[4])
end
if op == 'flush' then
  local n = 0
  for _, name in ipairs(redis.call('SMEMBERS', locks)) do
    n = n + redis.call('DEL', P .. ':lock:' .. name)
  end
  for _, name in ipairs(redis.call('ZRANGE', lock_exp, 0, -1)) do
    n = n + redis.call('DEL', P .. ':lock:' .. name)
  end
  redis.call('DEL', locks, lock_exp)
  return n
end
local name, owner = ARGV[4], ARGV[5]
local lk = P .. ':lock:' .. name
local f = redis.call('HMGET', lk, 'o', 'x')
-- An expiry that is not a number counts as past: garbage never holds a lock forever.
local live = (stamp(f[2]) or NOW) > NOW
if op == 'acquire' then
  if f[1] and f[1] ~= owner and live then return 0 end
  redis.call('HSET', lk, 'o', owner, 'x', ARGV[6])
  redis.call('PEXPIRE', lk, ARGV[7])
  redis.call('ZADD', lock_exp, ARGV[6], name)
  return 1
end
if f[1] == owner and (live or not stamp(f[2])) then
  redis.call('DEL', lk)
  redis.call('ZREM', lock_exp, name)
  redis.call('SREM', locks, name)
  return 1
end
return 0
