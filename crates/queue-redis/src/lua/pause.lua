-- pause.lua: pauses or resumes a queue (its flag P:{Q}:paused; the client lists paused queues
-- by reading the flags of the queues in the registry).
-- KEYS[1]: a key of the queue (see common.lua)
-- ARGV[3]: queue   ARGV[4]: "1" to pause, "0" to resume
-- Returns: 1 if the state changed, else 0.
--
-- A resume wakes the queue's idle consumers as an enqueue does (tokens on P:{Q}:wake): one per
-- task it can hand out now, at least one (a consumer waiting for a scheduled task or a lease
-- expiry then computes its wait again), at most WAKE_MAX.
local q = ARGV[3]
local k = Q(q)
if ARGV[4] == '1' then
  if redis.call(EXISTS, k.paused) == 1 then return 0 end
  redis.call('SET', k.paused, '1')
  return 1
end
if redis.call('DEL', k.paused) == 0 then return 0 end
local n = redis.call('ZCARD', k.ready) + redis.call('ZCOUNT', k.scheduled, '-inf', ARGV[2]) +
  redis.call('ZCOUNT', k.leased, '-inf', ARGV[2])
if n < 1 then n = 1 end
if n > WAKE_MAX then n = WAKE_MAX end
for _ = 1, n do wake(q) end
finish()
return 1
