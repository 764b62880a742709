-- complete.lua: applies a batch of completions of one queue's tasks; each is fenced by its lease.
-- KEYS[1]: a key of the queue (see common.lua)
-- ARGV[3]: the queue   ARGV[4]: n, the number of completions
-- Then per completion, either 5 fields (a success or drop without follow-ups, "fast"):
--   id lease_member "f" result_value result_expires_ms_or_empty
--   (lease_member "<id>|<token>" and result_value as stored in P:{Q}:results, both built by
--   the client), or 11 fields:
--   id lease_member kind eta_ms value fail_kind fail_message fail_attempts
--   result_expires_ms_or_empty follow_up_count outbox_count
--   kind: "ok" | "retry" | "defer" | "dead" | "drop"
--   followed by follow_up_count envelopes of this queue, 8 fields each (as in enqueue.lua),
--   and outbox_count pairs id envelope: follow-ups for other queues, kept in P:{Q}:outbox
--   (the client moves them to their queues after this call; see hot.rs).
-- Returns: one status per completion: 1 = acked, 0 = stale (also: not a task of this queue).
--
-- The common case, a fast completion, costs no call per task: its leases are checked with one
-- ZMSCORE, and its writes are gathered and issued as one variadic call per key (HDEL of the
-- task hash, ZREM from leased, HSET of the results). Gathered writes are flushed before any
-- other completion is applied, so the batch behaves as if applied in order. Revocations by id
-- of the tasks that ended are removed by the client after this call (another hash tag).
local q = ARGV[3]
local n = tonumber(ARGV[4])
local out = {}
local FAST, FAST_FIELDS, FULL_FIELDS = 'f', 5, 11
local k = Q(q)

-- Pass 1: where each completion starts; the unique key and lease of every id.
local starts, ids, members = {}, {}, {}
local i = 5
for c = 1, n do
  starts[c] = i
  ids[c] = ARGV[i]
  members[c] = ARGV[i + 1]
  if ARGV[i + 2] == FAST then
    i = i + FAST_FIELDS
  else
    i = i + FULL_FIELDS + tonumber(ARGV[i + 9]) * ENV_FIELDS + tonumber(ARGV[i + 10]) * 2
  end
end
local held = {}
local uks = sparse(k.uk, ids)
local s = 1
while s <= n do
  local e = s + CHUNK - 1
  if e > n then e = n end
  local scores = redis.call('ZMSCORE', k.leased, unpack(members, s, e))
  for j = s, e do held[j] = scores[j - s + 1] and true or false end
  s = e + 1
end

-- Gathered writes of fast completions.
local done_ids, done_members = {}, {}
local results, nr = {}, 0    -- id, value pairs
local expiring, ne = {}, 0   -- expiry, id pairs
local finished = {}    -- ids completed in this call (a second completion is stale)

local function flush()
  if #done_ids > 0 then
    batched({'ZREM', k.leased}, done_members)
    drop_fields(q, done_ids)
  end
  batched({'HSET', k.results}, results)
  batched({'ZADD', k['result-exp']}, expiring)
  wake_waiters(q, results, 2)
  done_ids, done_members, results, nr, expiring, ne = {}, {}, {}, 0, {}, 0
end

for c = 1, n do
  i = starts[c]
  local id, member, kind = ARGV[i], ARGV[i + 1], ARGV[i + 2]
  if finished[id] or not held[c] then
    out[c] = 0
  elseif kind == FAST then
    finished[id] = true
    done_ids[#done_ids + 1] = id
    done_members[#done_members + 1] = member
    release_unique(q, uks[c], id)
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
    local nf, no = tonumber(ARGV[i + 9]), tonumber(ARGV[i + 10])
    local first_follow = i + FULL_FIELDS
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
        write_result(q, id, '', 'undecodable', msg, att, dead_result_expiry())
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
      write_result(q, id, v, fk, fm, fa, rexp)
      for j = 0, nf - 1 do
        insert_at(first_follow + j * ENV_FIELDS)
      end
      local at = first_follow + nf * ENV_FIELDS
      for j = 0, no - 1 do
        local o = at + j * 2
        redis.call('HSET', k.outbox, ARGV[o], ARGV[2] .. '|' .. ARGV[o + 1])
      end
    end
    out[c] = 1
  end
end
flush()
finish()
return out
