-- dead.lua: one queue's dead-letter queue: list, requeue, purge, discard.
-- KEYS[1]: a key of the queue (see common.lua)
-- ARGV[3]: "list" | "ids" | "requeue" | "purge" | "discard"   ARGV[4]: the queue
-- list: ARGV[5] offset, ARGV[6] limit -> array of {id, queue, task, fail_kind, fail_message,
--   fail_attempts, failed_at, raw, seq}, oldest first
-- ids: ARGV[5] offset, ARGV[6] limit -> array of ids, oldest first
-- requeue: ARGV[5..] envelopes of 8 fields (as in enqueue.lua), each re-encoded with fresh
--   counts -> how many were requeued (a dead task whose id or unique key belongs to a pending
--   task stays dead)
-- purge: ARGV[5] limit -> {deleted, seen}; call until seen is 0. A purged or discarded task's
--   failure result goes with it (see forget)
-- discard: ARGV[5..] task ids -> how many of them were dead; each is removed as purge removes
--   it (its P:{Q}:dead:<id> hash and its entry in P:{Q}:dead). Ids that are not dead
--   (unknown, pending, already gone, or repeated in the list) are skipped, and count nothing.
local op, q = ARGV[3], ARGV[4]
local k = Q(q)

-- Removes dead task `id` (its record and index entry) with its failure result, when the
-- result is still the one its dead-lettering stored (`exp|fk|fa|fm`, see result_value): a
-- newer result of the same id (a fixed id run again) stays. Returns 1 if it was dead.
local function forget(id)
  local dk = dkey(q, id)
  local f = redis.call('HMGET', dk, 'q', 'fk', 'fm', 'fa')
  if f[1] then
    local r = redis.call('HGET', k.results, id)
    local bar = r and string.find(r, '|', 1, true)
    if bar and string.sub(r, bar + 1) == (f[2] or '') .. '|' .. (f[4] or '') .. '|' .. (f[3] or '') then
      delete_results(q, {id})
    end
  end
  redis.call('ZREM', k.dead, id)
  return redis.call('DEL', dk)
end

if op == 'list' or op == 'ids' then
  local offset, limit = tonumber(ARGV[5]), tonumber(ARGV[6])
  local ids = redis.call('ZRANGE', k.dead, offset, offset + limit - 1, 'WITHSCORES')
  local out = {}
  for j = 1, #ids, 2 do
    local id = ids[j]
    if op == 'ids' then
      out[#out + 1] = id
    else
      local f = redis.call('HMGET', dkey(q, id), 'q', 'task', 'fk', 'fm', 'fa', 'at', 'raw')
      if f[1] then
        -- Missing or garbage fields read as empty or 0 (nil would cut the row short).
        out[#out + 1] = {id, f[1], f[2] or '', f[3] or '', f[4] or '', count(f[5]),
          stamp(f[6]) or 0, f[7] or '', count(ids[j + 1])}
      end
    end
  end
  return out
end

if op == 'requeue' then
  local n = 0
  for i = 5, #ARGV, ENV_FIELDS do
    local id, uk = ARGV[i], ARGV[i + 5]
    -- Only when it can be stored: its id and unique key must be free, or it stays dead.
    local free = not pending(q, id) and (uk == '' or not unique_holder(new_batch(), q, uk))
    if ARGV[i + 1] == q and free and redis.call('EXISTS', dkey(q, id)) == 1 then
      forget(id)
      delete_results(q, {id})
      local flag = insert_at(i)
      n = n + flag
    end
  end
  finish()
  return n
end

if op == 'purge' then
  local ids = redis.call('ZRANGE', k.dead, 0, tonumber(ARGV[5]) - 1)
  local n = 0
  for _, id in ipairs(ids) do n = n + forget(id) end
  return {n, #ids}
end
if op == 'discard' then
  local n = 0
  for i = 5, #ARGV do n = n + forget(ARGV[i]) end
  return n
end
return redis.error_reply('unknown dead-letter operation ' .. op)
