-- workers.lua: the live workers' heartbeats; removing one.
-- KEYS[1]: a key of {~workers} (see common.lua)
-- ARGV[3]: "list" | "remove"
-- list: -> flat array {worker id, status, ...} of the workers live past now, unordered; first
--   removes at most CLEANUP expired ones (the rest go at later calls)
-- remove: ARGV[4] worker id -> 1 if it had a heartbeat (live or not), else 0
-- Only removes data: runs on a full server.
local op = ARGV[3]
local workers, worker_exp = wide('workers', 'workers'), wide('workers', 'worker-exp')
if op == 'remove' then
  local id = ARGV[4]
  redis.call('ZREM', worker_exp, id)
  return redis.call('HDEL', workers, id)
end
if op == 'list' then
  expire_some(worker_exp, workers, CLEANUP)
  local ids = redis.call('ZRANGEBYSCORE', worker_exp, '(' .. ARGV[2], '+inf')
  local out = {}
  if #ids == 0 then return out end
  local values = hmget(workers, ids)
  for j, id in ipairs(ids) do
    if values[j] then
      out[#out + 1] = id
      out[#out + 1] = values[j]
    end
  end
  return out
end
return redis.error_reply('unknown workers operation ' .. op)
