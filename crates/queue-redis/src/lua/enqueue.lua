-- enqueue.lua: stores a batch of envelopes, respecting ids and unique keys of pending tasks.
-- KEYS: none (see common.lua)
-- ARGV[3]: n, the number of envelopes
-- ARGV[4..]: n groups of 8: id queue priority run_at_ms unique_key deliveries attempts tail
--            (tail: the stored value after its ready score, see common.lua)
-- Returns: flat array {flag1, id1, flag2, id2, ...}; flag 1 = stored, 0 = duplicate of id.
--
-- No call per task: the ids are checked with one HMGET, and the stored tasks are written with
-- one variadic call per hash (see `stage` / `store_staged` in common.lua). A unique key costs
-- one HGET.
local n = tonumber(ARGV[3])
local out = {}

local ids = {}
for k = 1, n do ids[k] = ARGV[4 + (k - 1) * ENV_FIELDS] end
local pending = hmget(IDS, ids)

local b = new_batch()
for k = 1, n do
  local i = 4 + (k - 1) * ENV_FIELDS
  local id, uk = ARGV[i], ARGV[i + 4]
  local h = nil
  if pending[k] or b.taken[id] then
    h = id
  elseif uk ~= '' then
    h = b.keys[uk] or redis.call('HGET', UNIQ, uk) or nil
  end
  if h then
    out[#out + 1] = 0
    out[#out + 1] = h
  else
    stage(b, id, ARGV[i + 1], tonumber(ARGV[i + 2]), tonumber(ARGV[i + 3]), uk, ARGV[i + 5],
      ARGV[i + 6], ARGV[i + 7])
    out[#out + 1] = 1
    out[#out + 1] = id
  end
end
store_staged(b)
finish()
return out
