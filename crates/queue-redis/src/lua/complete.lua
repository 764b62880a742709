-- complete.lua: applies a batch of completions; each is fenced by its lease.
-- KEYS: none (see common.lua)
-- ARGV[3]: n, the number of completions
-- Then per completion, either 5 fields (a success or drop without follow-ups, "fast"):
--   id lease_member "f" result_value result_expires_ms_or_empty
--   (lease_member "<id>|<token>" and result_value as stored in P:results, both built by the
--   client), or 10 fields:
--   id lease_member kind eta_ms value fail_kind fail_message fail_attempts
--   result_expires_ms_or_empty follow_up_count
--   kind: "ok" | "retry" | "defer" | "dead" | "drop"
--   followed by follow_up_count envelopes of 8 fields each (as in enqueue.lua).
-- Returns: one status per completion: 1 = acked, 0 = stale.
--
-- The common case, a fast completion, costs no call per task: the queues of the batch are
-- read with one HMGET and its leases checked with one ZMSCORE, and its writes are gathered and
-- issued as one variadic call per key (HDEL of the task hash, ZREM from leased, HDEL from the
-- id index, HSET of the results). Gathered writes are flushed before any other completion is
-- applied, so the batch behaves as if applied in order.
local n = tonumber(ARGV[3])
local out = {}
local FAST, FAST_FIELDS, FULL_FIELDS = 'f', 5, 10

-- Pass 1: where each completion starts; the queue, unique key and lease of every id.
local starts, ids = {}, {}
local i = 4
for c = 1, n do
  starts[c] = i
  ids[c] = ARGV[i]
  if ARGV[i + 2] == FAST then
    i = i + FAST_FIELDS
  else
    i = i + FULL_FIELDS + tonumber(ARGV[i + 9]) * ENV_FIELDS
  end
end
local queues = hmget(IDS, ids)
local by_queue = {}
for c = 1, n do
  if queues[c] then add(by_queue, queues[c], c) end
end
local held, uks = {}, {}
for q, cs in pairs(by_queue) do
  local qids, qmembers = {}, {}
  for j, c in ipairs(cs) do
    qids[j] = ids[c]
    qmembers[j] = ARGV[starts[c] + 1]
  end
  local u = sparse(qkey(q, 'uk'), qids)
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

-- Gathered writes of fast completions.
local done = {}        -- queue -> {ids, members}
local results, nr = {}, 0    -- id, value pairs
local expiring, ne = {}, 0   -- expiry, id pairs
local finished = {}    -- ids completed in this call (a second completion is stale)
local gone, ng = {}, 0 -- ids that finished here (success, drop, dead): their revocations go

local function flush()
  for q, list in pairs(done) do
    batched({'ZREM', qkey(q, 'leased')}, list.members)
    drop_fields(q, list.ids)
    batched({'HDEL', IDS}, list.ids)
  end
  batched({'HSET', RESULTS}, results)
  batched({'ZADD', RESULT_EXP}, expiring)
  wake_waiters(results, 2)
  done, results, nr, expiring, ne = {}, {}, 0, {}, 0
end

for c = 1, n do
  i = starts[c]
  local id, member, kind = ARGV[i], ARGV[i + 1], ARGV[i + 2]
  local q = queues[c]
  if finished[id] or not held[c] then
    out[c] = 0
  elseif kind == FAST then
    finished[id] = true
    local d = done[q]
    if not d then
      d = {ids = {}, members = {}, n = 0}
      done[q] = d
    end
    local dn = d.n + 1
    d.ids[dn], d.members[dn], d.n = id, member, dn
    ng = ng + 1
    gone[ng] = 'i:' .. id
    release_unique(uks[c], id)
    results[nr + 1], results[nr + 2] = id, ARGV[i + 3]
    nr = nr + 2
    local rexp = ARGV[i + 4]
    if rexp ~= '' then
      expiring[ne + 1], expiring[ne + 2] = rexp, id
      ne = ne + 2
    end
    out[c] = 1
  else
    flush()
    finished[id] = true
    local eta = tonumber(ARGV[i + 3])
    local v, fk, fm, fa = ARGV[i + 4], ARGV[i + 5], ARGV[i + 6], ARGV[i + 7]
    local rexp = ARGV[i + 8]
    local nf = tonumber(ARGV[i + 9])
    local first_follow = i + FULL_FIELDS
    local k = Q(q)
    if kind == 'retry' or kind == 'defer' then
      -- Read first: a script error after the ZREM would leave the task in no index.
      local v = redis.call('HGET', k.task, id)
      local t = parse_task(v)
      local att = count(redis.call('HGET', k.att, id))
      local dlv = count(redis.call('HGET', k.dlv, id))
      if v and not t then
        -- Its stored header cannot be read: it could never be placed again.
        local msg = 'its stored value is corrupt (the header before the envelope cannot be read)'
        remove(q, id, member)
        bury(id, q, '?', v, 'undecodable', msg, att)
        write_result(id, '', 'undecodable', msg, att, dead_result_expiry())
        ng = ng + 1
        gone[ng] = 'i:' .. id
      else
        redis.call('ZREM', k.leased, member)
        if kind == 'retry' then
          -- A retried delivery counts; a deferred one does not.
          redis.call('HSET', k.att, id, format('%d', att + 1))
          redis.call('HSET', k.dlv, id, format('%d', dlv + 1))
        end
        if t then
          redis.call('HSET', k.task, id, make_task(t.score, eta, t.lim, t.name, t.raw))
          place(q, id, t.score, eta)
        end
        wake(q)
      end
    else
      if kind == 'dead' then
        local v = redis.call('HGET', k.task, id)
        local t = parse_task(v) or {name = '?', raw = v or ''}
        bury(id, q, t.name, t.raw, fk, fm, fa)
      end
      remove(q, id, member)
      ng = ng + 1
      gone[ng] = 'i:' .. id
      write_result(id, v, fk, fm, fa, rexp)
      for j = 0, nf - 1 do
        insert_at(first_follow + j * ENV_FIELDS)
      end
    end
    out[c] = 1
  end
end
flush()
-- A revocation by id goes with its task (one EXISTS per call while none exists).
if ng > 0 and redis.call('EXISTS', P .. ':revoked') == 1 then
  batched({'HDEL', P .. ':revoked'}, gone)
  batched({'ZREM', P .. ':revoked-exp'}, gone)
end
finish()
return out
