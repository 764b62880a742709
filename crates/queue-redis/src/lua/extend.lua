-- extend.lua: moves the expiry of current leases of one queue's tasks to a new time; stale
-- tokens (and tasks of other queues) are refused. Also writes progress under the same fence.
-- KEYS[1]: a key of the queue (see common.lua)
-- ARGV[3]: queue   ARGV[4]: "extend" | "progress"
-- extend: ARGV[5]: new expiry ms   ARGV[6..]: pairs id token
--   -> one status per lease: 1 = acked, 0 = stale.
-- progress: ARGV[5..]: triples id token progress (msgpack) -> how many were written: progress
--   is written only where "<id>|<token>" is still in the leased index
local q, op = ARGV[3], ARGV[4]
local k = Q(q)
if op == 'progress' then
  local n = 0
  for i = 5, #ARGV, 3 do
    if redis.call('ZSCORE', k.leased, lease_member(ARGV[i], ARGV[i + 1])) then
      redis.call('HSET', k.progress, ARGV[i], ARGV[i + 2])
      n = n + 1
    end
  end
  return n
end
local exp = ARGV[5]
local out = {}
for i = 6, #ARGV, 2 do
  local member = lease_member(ARGV[i], ARGV[i + 1])
  if redis.call('ZSCORE', k.leased, member) then
    redis.call('ZADD', k.leased, exp, member)
    out[#out + 1] = 1
  else
    out[#out + 1] = 0
  end
end
return out
