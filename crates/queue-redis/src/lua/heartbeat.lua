-- heartbeat.lua: stores a worker's heartbeat and the progress of its tasks; answers which of
-- its running tasks an operator asked to cancel.
-- KEYS: none (see common.lua)
-- ARGV[3]: worker id   ARGV[4]: its status (an encoded WorkerStatus)   ARGV[5]: live until ms
-- ARGV[6]: n, the number of progress reports, followed by n triples: task id, lease token,
--   progress (msgpack)
-- ARGV[7 + 3n ..]: the ids of the tasks the worker runs
-- Returns: those ids that have a cancel request kept past now.
--
-- Progress is written only where "<id>|<token>" is still in the task's leased index (the same
-- fence as extend.lua). Also removes at most CLEANUP expired workers and lapsed cancel requests.
local wid = ARGV[3]
redis.call('HSET', WORKERS, wid, ARGV[4])
redis.call('ZADD', WORKER_EXP, ARGV[5], wid)
expire_some(WORKER_EXP, WORKERS, CLEANUP)
expire_some(CANCEL, nil, CLEANUP)

local n = tonumber(ARGV[6])
if n > 0 then
  local ids = {}
  for j = 1, n do ids[j] = ARGV[4 + 3 * j] end
  local queues = hmget(IDS, ids)
  for j = 1, n do
    local q, i = queues[j], 4 + 3 * j
    if q and redis.call('ZSCORE', qkey(q, 'leased'), lease_member(ARGV[i], ARGV[i + 1])) then
      redis.call('HSET', qkey(q, 'progress'), ARGV[i], ARGV[i + 2])
    end
  end
end

local out = {}
local first = 7 + 3 * n
if first > #ARGV or redis.call(EXISTS, CANCEL) == 0 then return out end
local s = first
while s <= #ARGV do
  local e = s + CHUNK - 1
  if e > #ARGV then e = #ARGV end
  local scores = redis.call('ZMSCORE', CANCEL, unpack(ARGV, s, e))
  for j = s, e do
    local until_ms = scores[j - s + 1]
    if until_ms and tonumber(until_ms) > NOW then out[#out + 1] = ARGV[j] end
  end
  s = e + 1
end
return out
