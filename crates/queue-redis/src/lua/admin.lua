-- admin.lua: introspection: counts, listing, one task, queue names, progress.
-- KEYS: none (see common.lua)
-- ARGV[3]: "counts" | "list" | "task" | "queues" | "progress"
-- counts: ARGV[4] queue or "" -> {ready, scheduled, leased, dead, results}
-- list: ARGV[4] state ("ready" | "scheduled" | "leased"), ARGV[5] queue, ARGV[6] start,
--   ARGV[7] count -> `count` rows from `start` {id, queue, raw, pri, run, tok, exp, dlv, att, seq} in order.
--   Listing "ready" first moves at most 1,000 due scheduled tasks to ready (not visible:
--   a due scheduled task already counts as ready).
-- task: ARGV[4] id -> one row or nil
-- queues: -> names of queues with pending or dead tasks, unordered
-- progress: ARGV[4] id -> the task's newest progress (see P:{Q}:progress), or nil
local op = ARGV[3]

if op == 'progress' then
  local id = ARGV[4]
  local q = redis.call('HGET', IDS, id)
  if not q then return nil end
  return redis.call('HGET', qkey(q, 'progress'), id)
end

local function queue_counts(q)
  local sk = qkey(q, 'scheduled')
  local due = redis.call('ZCOUNT', sk, '-inf', NOW)
  return redis.call('ZCARD', qkey(q, 'ready')) + due,
    redis.call('ZCARD', sk) - due,
    redis.call('ZCARD', qkey(q, 'leased')),
    redis.call('ZCARD', qkey(q, 'dead'))
end

if op == 'counts' then
  local r, s, l, d = 0, 0, 0, 0
  local names = {ARGV[4]}
  if ARGV[4] == '' then names = redis.call('SMEMBERS', QUEUES) end
  for _, q in ipairs(names) do
    local a, b, c, e = queue_counts(q)
    r, s, l, d = r + a, s + b, l + c, d + e
  end
  local results = redis.call('HLEN', RESULTS) - redis.call('ZCOUNT', RESULT_EXP, '-inf', NOW)
  return {r, s, l, d, results}
end

if op == 'queues' then
  local out = {}
  for _, q in ipairs(redis.call('SMEMBERS', QUEUES)) do
    local a, b, c, e = queue_counts(q)
    if a + b + c + e > 0 then out[#out + 1] = q end
  end
  return out
end

if op == 'task' then
  local id = ARGV[4]
  local q = redis.call('HGET', IDS, id)
  if not q then return nil end
  return task_row(q, id, find_lease(q, id))
end

if op == 'list' then
  local state, q = ARGV[4], ARGV[5]
  local start, count = tonumber(ARGV[6]), tonumber(ARGV[7])
  local ids
  if state == 'ready' then
    promote_scheduled(q, 1000)
    ids = redis.call('ZRANGE', qkey(q, 'ready'), start, start + count - 1)
  elseif state == 'scheduled' then
    ids = redis.call('ZRANGEBYSCORE', qkey(q, 'scheduled'), '(' .. NOW, '+inf', 'LIMIT', start, count)
  else
    local out = {}
    local leases = redis.call('ZRANGE', qkey(q, 'leased'), start, start + count - 1, 'WITHSCORES')
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
