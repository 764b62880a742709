-- lock.lua: takes, releases or flushes named locks with an owner and an expiry; stores and
-- removes revocations (store-wide control state, kept with its expiry index).
-- KEYS[1]: a key of {~locks} for the lock operations, of {~revoked} for the revocation ones
-- ARGV[3]: "acquire" | "release" | "flush" | "revoke" | "restore" | "forget"
-- acquire: ARGV[4] name, ARGV[5] owner, ARGV[6] expiry ms, ARGV[7] real pexpire ms -> 1 | 0
-- release: ARGV[4] name, ARGV[5] owner -> 1 | 0
-- flush: -> how many locks there were
-- revoke: ARGV[4] field ("i:<id>" | "t:<name>"), ARGV[5] value ("<until ms>|<once>"),
--   ARGV[6] until ms or "" -> 1
-- restore: ARGV[4] field -> 1 if it was there
-- forget: ARGV[4..] ids of tasks that ended -> how many revocations by id went with them
--
-- Each lock's expiry is indexed in P:{~locks}:lock-exp (name -> expiry ms) and each
-- revocation with an end in P:{~revoked}:revoked-exp (field -> until ms), so
-- purge_expired.lua finds what lapsed with a bounded range read instead of reading every lock
-- and revocation.
local op = ARGV[3]
if op == 'revoke' or op == 'restore' or op == 'forget' then
  local revoked, revoked_exp = wide('revoked', 'revoked'), wide('revoked', 'revoked-exp')
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
  if redis.call(EXISTS, revoked) == 0 then return 0 end
  local fields = {}
  for i = 4, #ARGV do fields[#fields + 1] = 'i:' .. ARGV[i] end
  local n = batched({'HDEL', revoked}, fields)
  batched({'ZREM', revoked_exp}, fields)
  return n
end
local lock_exp = wide('locks', 'lock-exp')
local function lock_key(name) return wide('locks', 'lock:' .. name) end
if op == 'flush' then
  local n = 0
  for _, name in ipairs(redis.call('ZRANGE', lock_exp, 0, -1)) do
    n = n + redis.call('DEL', lock_key(name))
  end
  redis.call('DEL', lock_exp)
  return n
end
local name, owner = ARGV[4], ARGV[5]
local lk = lock_key(name)
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
  return 1
end
return 0
