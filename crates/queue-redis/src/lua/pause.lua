-- pause.lua: pauses or resumes a queue (its name in the set P:paused).
-- KEYS: none (see common.lua)
-- ARGV[3]: queue   ARGV[4]: "1" to pause, "0" to resume
-- Returns: 1 if the state changed, else 0.
--
-- A resume wakes the queue's idle consumers as an enqueue does (tokens on P:{Q}:wake): one per
-- task it can hand out now, at least one (a consumer waiting for a scheduled task or a lease
-- expiry then computes its wait again), at most WAKE_MAX.
local q = ARGV[3]
if ARGV[4] == '1' then return redis.call('SADD', PAUSED, q) end
if redis.call('SREM', PAUSED, q) == 0 then return 0 end
local k = Q(q)
local n = redis.call('ZCARD', k.ready) + redis.call('ZCOUNT', k.scheduled, '-inf', ARGV[2]) +
  redis.call('ZCOUNT', k.leased, '-inf', ARGV[2])
if n < 1 then n = 1 end
if n > WAKE_MAX then n = WAKE_MAX end
for _ = 1, n do wake(q) end
finish()
return 1
