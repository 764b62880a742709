-- enqueue.lua: stores a batch of envelopes of one queue, respecting the ids and unique keys of
-- that queue's pending tasks.
-- KEYS[1]: a key of the queue (see common.lua)
-- ARGV[3]: n, the number of envelopes
-- ARGV[4..]: n groups of ENV_FIELDS (8): id queue priority run ord unique_key counts tail (see
--            `ENV_FIELDS` in common.lua)
-- Returns: flat array {k1, id1, k2, id2, ...} of the envelopes not stored: envelope k (1-based)
--   is a duplicate of pending task id. Every envelope not named was stored.
--
-- No call per task: the ids are checked with one HMGET of the task hash (nil for a new id),
-- and the stored tasks are written with one variadic call per hash (see `stage` /
-- `store_staged` in common.lua). A unique key costs one HGET.
local n = tonumber(ARGV[3])
local out, no = {}, 0

local ids = {}
for k = 1, n do ids[k] = ARGV[4 + (k - 1) * ENV_FIELDS] end
local q = ARGV[5]
local held = {}
if n > 0 then held = hmget(qkey(q, 'task'), ids) end

local b = new_batch()
for k = 1, n do
  local i = 4 + (k - 1) * ENV_FIELDS
  local id, uk = ARGV[i], ARGV[i + 5]
  if ARGV[i + 1] ~= q then return redis.error_reply('skiff: one enqueue call, one queue') end
  local h = nil
  if held[k] or b.taken[q .. '|' .. id] then
    h = id
  elseif uk ~= '' then
    h = unique_holder(b, q, uk)
  end
  if h then
    out[no + 1], out[no + 2] = k, h
    no = no + 2
  else
    stage(b, i)
  end
end
store_staged(b)
finish()
return out
