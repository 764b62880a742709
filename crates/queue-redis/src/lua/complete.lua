-- complete.lua: applies a batch of completions; each is fenced by its lease token.
-- KEYS: none (see common.lua)
-- ARGV[3]: n, the number of completions
-- Then per completion, 10 fields: id token kind eta_ms value fail_kind fail_message
--   fail_attempts result_expires_ms_or_empty follow_up_count
--   kind: "ok" | "retry" | "defer" | "dead" | "drop"
-- followed by follow_up_count envelopes of 8 fields each (as in enqueue.lua).
-- Returns: one status per completion: 1 = acked, 0 = stale.
--
-- The common case, a success or drop without follow-ups, costs no call per task: the queues and
-- unique keys of the batch are read with one HMGET each and its leases checked with one
-- ZMSCORE, and its writes are gathered and issued as one variadic call per key (HDEL of the
-- task's fields, ZREM from leased, HDEL from the id index, HSET of the results). Gathered
-- writes are flushed before any other completion is applied, so the batch behaves as if
-- applied in order.
local n = tonumber(ARGV[3])
local out = {}

-- Pass 1: where each completion starts; the queue, unique key and lease of every id.
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
local members, held, uks = {}, {}, {}
for q, cs in pairs(by_queue) do
  local qids, qmembers = {}, {}
  for j, c in ipairs(cs) do
    qids[j] = ids[c]
    members[c] = lease_member(ids[c], ARGV[starts[c] + 1])
    qmembers[j] = members[c]
  end
  local u = hmget(qkey(q, 'uk'), qids)
  local s = 1
  while s <= #qmembers do
    local e = s + CHUNK - 1
    if e > #qmembers then e = #qmembers end
    local scores = redis.call('ZMSCORE', qkey(q, 'leased'), unpack(qmembers, s, e))
    for j = s, e do held[cs[j]] = scores[j - s + 1] and true or false end
    s = e + 1
  end
  for j, c in ipairs(cs) do uks[c] = u[j] end
end

-- Gathered writes of fast-path completions.
local done = {}        -- queue -> ids
local results = {}     -- id, value pairs
local expiring = {}    -- expiry, id pairs
local written = {}     -- ids whose result was written
local finished = {}    -- ids completed in this call (a second completion is stale)

local function flush()
  for q, list in pairs(done) do
    batched({'ZREM', qkey(q, 'leased')}, list.members)
    drop_fields(q, list.ids)
    batched({'HDEL', IDS}, list.ids)
  end
  batched({'HSET', RESULTS}, results)
  batched({'ZADD', RESULT_EXP}, expiring)
  wake_waiters(written)
  done, results, expiring, written = {}, {}, {}, {}
end

for c = 1, n do
  i = starts[c]
  local id, kind = ARGV[i], ARGV[i + 2]
  local eta = tonumber(ARGV[i + 3])
  local v, fk, fm, fa = ARGV[i + 4], ARGV[i + 5], ARGV[i + 6], ARGV[i + 7]
  local rexp = ARGV[i + 8]
  local nf = tonumber(ARGV[i + 9])
  local first_follow = i + 10
  local q = queues[c]
  if finished[id] or not held[c] then
    out[c] = 0
  elseif (kind == 'ok' or kind == 'drop') and nf == 0 then
    -- The fast path: gather.
    finished[id] = true
    local d = done[q]
    if not d then
      d = {ids = {}, members = {}}
      done[q] = d
    end
    d.ids[#d.ids + 1] = id
    d.members[#d.members + 1] = members[c]
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
      redis.call('ZREM', k.leased, members[c])
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
      remove(q, id, members[c])
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
