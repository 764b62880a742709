-- cancel.lua: records an operator's request to cancel a pending or running task.
-- KEYS: none (see common.lua)
-- ARGV[3]: id   ARGV[4]: kept until ms
-- Returns: "running" (leased), "pending" (ready or scheduled), or "none" (no such pending
--   task: nothing is recorded).
-- Also removes at most CLEANUP lapsed requests.
local id = ARGV[3]
expire_some(CANCEL, nil, CLEANUP)
local q = redis.call('HGET', IDS, id)
if not q or redis.call('HEXISTS', qkey(q, 'task'), id) == 0 then return 'none' end
redis.call('ZADD', CANCEL, ARGV[4], id)
local k = Q(q)
-- A pending task in neither ready nor scheduled is leased.
if redis.call('ZSCORE', k.ready, id) or redis.call('ZSCORE', k.scheduled, id) then
  return 'pending'
end
return 'running'
