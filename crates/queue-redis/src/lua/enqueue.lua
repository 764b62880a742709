-- enqueue.lua: stores a batch of envelopes, respecting ids and unique keys of pending tasks.
-- KEYS: none (see common.lua)
-- ARGV[3]: n, the number of envelopes
-- ARGV[4..]: n groups of 10: id queue raw priority run_at_ms delivery_limit unique_key
--            task_name deliveries attempts
-- Returns: flat array {flag1, id1, flag2, id2, ...}; flag 1 = stored, 0 = duplicate of id.
local n = tonumber(ARGV[3])
local out = {}
for k = 0, n - 1 do
  local flag, id = insert_at(4 + k * ENV_FIELDS)
  out[#out + 1] = flag
  out[#out + 1] = id
end
finish()
return out
