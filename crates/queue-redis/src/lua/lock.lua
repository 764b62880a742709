-- lock.lua: takes, releases or flushes named locks with an owner and an expiry.
-- KEYS: none (see common.lua)
-- ARGV[3]: "acquire" | "release" | "flush"
-- acquire: ARGV[4] name, ARGV[5] owner, ARGV[6] expiry ms, ARGV[7] real pexpire ms -> 1 | 0
-- release: ARGV[4] name, ARGV[5] owner -> 1 | 0
-- flush: -> how many locks there were
local op = ARGV[3]
local locks = P .. ':locks'
if op == 'flush' then
  local n = 0
  for _, name in ipairs(redis.call('SMEMBERS', locks)) do
    n = n + redis.call('DEL', P .. ':lock:' .. name)
  end
  redis.call('DEL', locks)
  return n
end
local name, owner = ARGV[4], ARGV[5]
local lk = P .. ':lock:' .. name
local f = redis.call('HMGET', lk, 'o', 'x')
if op == 'acquire' then
  if f[1] and f[1] ~= owner and tonumber(f[2]) > NOW then return 0 end
  redis.call('HSET', lk, 'o', owner, 'x', ARGV[6])
  redis.call('PEXPIRE', lk, ARGV[7])
  redis.call('SADD', locks, name)
  return 1
end
if f[1] == owner and tonumber(f[2]) > NOW then
  redis.call('DEL', lk)
  redis.call('SREM', locks, name)
  return 1
end
return 0
