-- dead.lua: the dead-letter queue: list, requeue, purge, discard.
-- KEYS: none (see common.lua)
-- ARGV[3]: "list" | "ids" | "requeue" | "purge" | "discard"
-- list: ARGV[4] queue or "", ARGV[5] offset, ARGV[6] limit
--   -> array of {id, queue, task, fail_kind, fail_message, fail_attempts, failed_at, raw}, oldest first
-- ids: ARGV[4] queue or "", ARGV[5] offset, ARGV[6] limit -> array of ids, oldest first
-- requeue: ARGV[4..] envelopes of 8 fields (as in enqueue.lua), each re-encoded with fresh
--   counts -> how many were requeued (a dead task whose id or unique key belongs to a pending
--   task stays dead)
-- purge: ARGV[4] queue or "", ARGV[5] limit -> {deleted, seen}; call until seen is 0. A
--   purged or discarded task's failure result goes with it (see forget)
-- discard: ARGV[4..] task ids -> how many of them were dead; each is removed as purge removes
--   it (its P:dead:<id> hash and its entries in P:dead and P:{Q}:dead). Ids that are not dead
--   (unknown, pending, already gone, or repeated in the list) are skipped, and count nothing.
local op = ARGV[3]

local function index(q)
  if q == '' then return DEAD end
  return qkey(q, 'dead')
end

-- Removes dead task `id` (its record and index entries) with its failure result, when the
-- result is still the one its dead-lettering stored (`exp|fk|fa|fm`, see result_value): a
-- newer result of the same id (a fixed id run again) stays. Returns 1 if it was dead.
local function forget(id)
  local dk = dkey(id)
  local f = redis.call('HMGET', dk, 'q', 'fk', 'fm', 'fa')
  local q = f[1]
  if q then
    redis.call('ZREM', qkey(q, 'dead'), id)
    local r = redis.call('HGET', RESULTS, id)
    local bar = r and string.find(r, '|', 1, true)
    if bar and string.sub(r, bar + 1) == (f[2] or '') .. '|' .. (f[4] or '') .. '|' .. (f[3] or '') then
      delete_results({id})
    end
  end
  redis.call('ZREM', DEAD, id)
  return redis.call('DEL', dk)
end

if op == 'list' or op == 'ids' then
  local offset, limit = tonumber(ARGV[5]), tonumber(ARGV[6])
  local ids = redis.call('ZRANGE', index(ARGV[4]), offset, offset + limit - 1)
  if op == 'ids' then return ids end
  local out = {}
  for _, id in ipairs(ids) do
    local f = redis.call('HMGET', dkey(id), 'q', 'task', 'fk', 'fm', 'fa', 'at', 'raw')
    if f[1] then
      -- Missing or garbage fields read as empty or 0 (nil would cut the row short).
      out[#out + 1] = {id, f[1], f[2] or '', f[3] or '', f[4] or '', count(f[5]),
        stamp(f[6]) or 0, f[7] or ''}
    end
  end
  return out
end

if op == 'requeue' then
  local n = 0
  for i = 4, #ARGV, ENV_FIELDS do
    local id, uk = ARGV[i], ARGV[i + 5]
    -- Only when it can be stored: its id and unique key must be free, or it stays dead.
    local free = redis.call('HEXISTS', IDS, id) == 0 and
      (uk == '' or not unique_holder(new_batch(), uk))
    if free and redis.call('EXISTS', dkey(id)) == 1 then
      forget(id)
      delete_results({id})
      local flag = insert_at(i)
      n = n + flag
    end
  end
  finish()
  return n
end

if op == 'purge' then
  local ids = redis.call('ZRANGE', index(ARGV[4]), 0, tonumber(ARGV[5]) - 1)
  local n = 0
  for _, id in ipairs(ids) do n = n + forget(id) end
  return {n, #ids}
end
if op == 'discard' then
  local n = 0
  for i = 4, #ARGV do n = n + forget(ARGV[i]) end
  return n
end
return redis.error_reply('unknown dead-letter operation ' .. op)
