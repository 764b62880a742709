-- complete.lua: applies a batch of completions; each is fenced by its lease token.
-- KEYS: none (see common.lua)
-- ARGV[3]: n, the number of completions
-- Then per completion, 10 fields: id token kind eta_ms value fail_kind fail_message
--   fail_attempts result_expires_ms_or_empty follow_up_count
--   kind: "ok" | "retry" | "defer" | "dead" | "drop"
-- followed by follow_up_count envelopes of 8 fields each (as in enqueue.lua).
-- Returns: one status per completion: 1 = acked, 0 = stale.
--
-- The common case, a success or drop without follow-ups, costs no call per task: the queues,
-- tokens and unique keys of the batch are read with one HMGET each, and its writes are gathered
-- and issued as one variadic call per key (HDEL of each per-task hash, ZREM from leased, HDEL
-- from the id index, HSET of the results). Gathered writes are flushed before any other
-- completion is applied, so the batch behaves as if applied in order.
local n = tonumber(ARGV[3])
local out = {}

-- Pass 1: where each completion starts; the queue, token and unique key of every id.
local starts, ids = {}, {}
local i = 4
for c = 1, n do
  starts[c] = i
  ids[c] = ARGV[i]
  i = i + 10 + tonumber(ARGV[i + 9]) * ENV_FIELDS
end
local queues = hmget(IDS, ids)
local by_queue = {}
for c = 1, n do
  if queues[c] then add(by_queue, queues[c], c) end
end
local tokens, uks = {}, {}
for q, cs in pairs(by_queue) do
  local qids = {}
  for j, c in ipairs(cs) do qids[j] = ids[c] end
  local got = hmget(qkey(q, 'task'), fields('t:', qids))
  local u = hmget(qkey(q, 'uk'), qids)
  for j, c in ipairs(cs) do
    tokens[c], uks[c] = got[j], u[j]
  end
end

-- Gathered writes of fast-path completions.
local done = {}        -- queue -> ids
local results = {}     -- id, value pairs
local expiring = {}    -- expiry, id pairs
local written = {}     -- ids whose result was written
local finished = {}    -- ids completed in this call (a second completion is stale)

local function flush()
  for q, list in pairs(done) do
    batched({'ZREM', qkey(q, 'leased')}, list)
    drop_fields(q, list)
    batched({'HDEL', IDS}, list)
  end
  batched({'HSET', RESULTS}, results)
  batched({'ZADD', RESULT_EXP}, expiring)
  wake_waiters(written)
  done, results, expiring, written = {}, {}, {}, {}
end

for c = 1, n do
  i = starts[c]
  local id, token, kind = ARGV[i], ARGV[i + 1], ARGV[i + 2]
  local eta = tonumber(ARGV[i + 3])
  local v, fk, fm, fa = ARGV[i + 4], ARGV[i + 5], ARGV[i + 6], ARGV[i + 7]
  local rexp = ARGV[i + 8]
  local nf = tonumber(ARGV[i + 9])
  local first_follow = i + 10
  local q = queues[c]
  if finished[id] or tokens[c] ~= token then
    out[c] = 0
  elseif (kind == 'ok' or kind == 'drop') and nf == 0 then
    -- The fast path: gather.
    finished[id] = true
    add(done, q, id)
    release_unique(uks[c], id)
    results[#results + 1] = id
    results[#results + 1] = result_value(v, fk, fm, fa, rexp)
    if rexp ~= '' then
      expiring[#expiring + 1] = rexp
      expiring[#expiring + 1] = id
    end
    written[#written + 1] = id
    out[c] = 1
  else
    flush()
    finished[id] = true
    local k = Q(q)
    if kind == 'retry' or kind == 'defer' then
      redis.call('ZREM', k.leased, id)
      redis.call('HDEL', k.task, 't:' .. id)
      local t = parse_task(redis.call('HGET', k.task, id))
      if kind == 'retry' then
        redis.call('HINCRBY', k.att, id, 1)
      elseif tonumber(redis.call('HGET', k.task, 'd:' .. id) or 0) > 0 then
        redis.call('HINCRBY', k.task, 'd:' .. id, -1)
      end
      if t then
        redis.call('HSET', k.task, id, make_task(t.score, eta, t.lim, t.name, t.raw))
        place(q, id, t.score, eta)
      end
      wake(q)
    else
      if kind == 'dead' then
        local t = parse_task(redis.call('HGET', k.task, id)) or {name = '?', raw = ''}
        bury(id, q, t.name, t.raw, fk, fm, fa)
      end
      remove(q, id, true)
      write_result(id, v, fk, fm, fa, rexp)
      for j = 0, nf - 1 do
        insert_at(first_follow + j * ENV_FIELDS)
      end
    end
    out[c] = 1
  end
end
flush()
finish()
return out
