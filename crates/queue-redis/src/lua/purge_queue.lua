-- purge_queue.lua: deletes up to `limit` pending, unleased tasks of one queue (ready first, then
-- scheduled) with every field of theirs, and their unique keys. Leased
-- tasks and dead letters stay. The client calls it until it deletes fewer than `limit`.
-- KEYS[1]: a key of the queue (see common.lua)
-- ARGV[3]: queue   ARGV[4]: limit
-- Returns: how many tasks were deleted.
local q, limit = ARGV[3], tonumber(ARGV[4])
local k = Q(q)
local ids = redis.call('ZRANGE', k.ready, 0, limit - 1)
if #ids < limit then
  local later = redis.call('ZRANGE', k.scheduled, 0, limit - #ids - 1)
  for _, id in ipairs(later) do ids[#ids + 1] = id end
end
if #ids == 0 then return 0 end
batched({'ZREM', k.ready}, ids)
batched({'ZREM', k.scheduled}, ids)
local uks = sparse(k.uk, ids)
drop_fields(q, ids)
for j, id in ipairs(ids) do release_unique(q, uks[j], id) end
return #ids
