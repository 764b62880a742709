-- enqueue.lua: stores a batch of envelopes, respecting ids and unique keys of pending tasks.
-- KEYS: none (see common.lua)
-- ARGV[3]: n, the number of envelopes
-- ARGV[4..]: n groups of ENV_FIELDS (8): id queue priority run ord unique_key counts tail (see
--            `ENV_FIELDS` in common.lua)
-- Returns: flat array {k1, id1, k2, id2, ...} of the envelopes not stored: envelope k (1-based)
--   is a duplicate of pending task id. Every envelope not named was stored.
--
-- No call per task: the ids are checked with one HMGET, and the stored tasks are written with
-- one variadic call per hash (see `stage` / `store_staged` in common.lua). A unique key costs
-- one HGET.
local n = tonumber(ARGV[3])
local out, no = {}, 0

local ids = {}
for k = 1, n do ids[k] = ARGV[4 + (k - 1) * ENV_FIELDS] end
local pending = hmget(IDS, ids)

local b = new_batch()
for k = 1, n do
  local i = 4 + (k - 1) * ENV_FIELDS
  local id, uk = ARGV[i], ARGV[i + 5]
  local h = nil
  if pending[k] or b.taken[id] then
    h = id
  elseif uk ~= '' then
    h = unique_holder(b, uk)
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
