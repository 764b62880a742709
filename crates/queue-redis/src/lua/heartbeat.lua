-- heartbeat.lua: stores a worker's heartbeat and answers which of its running tasks an
-- operator asked to cancel; records cancel requests. (The progress of a worker's tasks is
-- written per queue by extend.lua: another hash tag.)
-- KEYS[1]: a key of {~workers} (see common.lua)
-- ARGV[3]: "cancel" | "beat"
-- cancel: ARGV[4] task id, ARGV[5] kept until ms -> 1 (the client first checked that the
--   task is pending: cancel.lua)
-- beat: ARGV[4]: worker id   ARGV[5]: its status (an encoded WorkerStatus)
--   ARGV[6]: live until ms   ARGV[7..]: the ids of the tasks the worker runs
--   -> those ids that have a cancel request kept past now.
--
-- Also removes at most CLEANUP expired workers and lapsed cancel requests.
local workers, worker_exp, cancel = wide('workers', 'workers'), wide('workers', 'worker-exp'),
  wide('workers', 'cancel')
if ARGV[3] == 'cancel' then
  expire_some(cancel, nil, CLEANUP)
  redis.call('ZADD', cancel, ARGV[5], ARGV[4])
  return 1
end
local wid = ARGV[4]
redis.call('HSET', workers, wid, ARGV[5])
redis.call('ZADD', worker_exp, ARGV[6], wid)
expire_some(worker_exp, workers, CLEANUP)
expire_some(cancel, nil, CLEANUP)

local out = {}
local first = 7
if first > #ARGV or redis.call(EXISTS, cancel) == 0 then return out end
local s = first
while s <= #ARGV do
  local e = s + CHUNK - 1
  if e > #ARGV then e = #ARGV end
  local scores = redis.call('ZMSCORE', cancel, unpack(ARGV, s, e))
  for j = s, e do
    local until_ms = scores[j - s + 1]
    if until_ms and tonumber(until_ms) > NOW then out[#out + 1] = ARGV[j] end
  end
  s = e + 1
end
return out
