-- admin.lua: introspection of one queue: counts, listing, one task, progress, and where ids are.
-- KEYS[1]: a key of the queue (see common.lua)
-- ARGV[3]: "counts" | "list" | "task" | "progress" | "locate"   ARGV[4]: the queue
-- counts: -> {ready, scheduled, leased, dead, results}
-- list: ARGV[5] state ("ready" | "scheduled" | "leased"), ARGV[6] start, ARGV[7] count ->
--   `count` rows from `start` {id, queue, raw, pri, run, tok, exp, dlv, att, seq} in order.
--   Listing "ready" first moves at most 1,000 due scheduled tasks to ready (not visible:
--   a due scheduled task already counts as ready).
-- task: ARGV[5] id -> one row or nil
-- progress: ARGV[5] id -> the task's newest progress (see P:{Q}:progress), or nil
-- locate: ARGV[5..] ids -> one number per id, the sum of 1 (a pending task of this queue),
--   2 (a result, expired or not) and 4 (a dead letter): how lookups by id alone find a
--   task's queue (see locate.rs)
local op, q = ARGV[3], ARGV[4]
local k = Q(q)

if op == 'locate' then
  local ids = {}
  for i = 5, #ARGV do ids[#ids + 1] = ARGV[i] end
  local out = {}
  if #ids == 0 then return out end
  local has_results = redis.call(EXISTS, k.results) == 1
  for j, id in ipairs(ids) do
    local flags = 0
    if redis.call('HEXISTS', k.task, id) == 1 then flags = flags + 1 end
    if has_results and redis.call('HEXISTS', k.results, id) == 1 then flags = flags + 2 end
    if redis.call(EXISTS, dkey(q, id)) == 1 then flags = flags + 4 end
    out[j] = flags
  end
  return out
end

if op == 'progress' then
  return redis.call('HGET', k.progress, ARGV[5])
end

if op == 'counts' then
  local due = redis.call('ZCOUNT', k.scheduled, '-inf', NOW)
  local results = redis.call('HLEN', k.results) - redis.call('ZCOUNT', k['result-exp'], '-inf', NOW)
  return {redis.call('ZCARD', k.ready) + due, redis.call('ZCARD', k.scheduled) - due,
    redis.call('ZCARD', k.leased), redis.call('ZCARD', k.dead), results}
end

if op == 'task' then
  local id = ARGV[5]
  if redis.call('HEXISTS', k.task, id) == 0 then return nil end
  return task_row(q, id, find_lease(q, id))
end

if op == 'list' then
  local state = ARGV[5]
  local start, count = tonumber(ARGV[6]), tonumber(ARGV[7])
  local ids
  if state == 'ready' then
    promote_scheduled(q, 1000)
    ids = redis.call('ZRANGE', k.ready, start, start + count - 1)
  elseif state == 'scheduled' then
    ids = redis.call('ZRANGEBYSCORE', k.scheduled, '(' .. NOW, '+inf', 'LIMIT', start, count)
  else
    local out = {}
    local leases = redis.call('ZRANGE', k.leased, start, start + count - 1, 'WITHSCORES')
    for j = 1, #leases, 2 do
      local m = leases[j]
      local row = task_row(q, member_id(m), m, tonumber(leases[j + 1]))
      if row then out[#out + 1] = row end
    end
    return out
  end
  local out = {}
  for _, id in ipairs(ids) do
    local row = task_row(q, id)
    if row then out[#out + 1] = row end
  end
  return out
end
return redis.error_reply('unknown admin operation ' .. op)
