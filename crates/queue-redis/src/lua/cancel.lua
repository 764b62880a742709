-- cancel.lua: where a task an operator asks to cancel is: the queue's half of a cancel request
-- (the request itself is kept in P:{~workers}:cancel by workers.lua, another hash tag).
-- KEYS[1]: a key of the queue (see common.lua)
-- ARGV[3]: queue   ARGV[4]: id
-- Returns: "running" (leased), "pending" (ready or scheduled), or "none" (no such pending
--   task in this queue).
local q, id = ARGV[3], ARGV[4]
local k = Q(q)
if redis.call('HEXISTS', k.task, id) == 0 then return 'none' end
-- A pending task in neither ready nor scheduled is leased.
if redis.call('ZSCORE', k.ready, id) or redis.call('ZSCORE', k.scheduled, id) then
  return 'pending'
end
return 'running'
