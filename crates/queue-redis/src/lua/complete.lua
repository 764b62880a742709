-- complete.lua: applies a batch of completions; each is fenced by its lease token.
-- KEYS: none (see common.lua)
-- ARGV[3]: n, the number of completions
-- Then per completion, 11 fields: id token kind eta_ms value fail_kind fail_message
--   fail_attempts result_expires_ms_or_empty result_pexpire_ms follow_up_count
--   kind: "ok" | "retry" | "defer" | "dead" | "drop"
-- followed by follow_up_count envelopes of 10 fields each (as in enqueue.lua).
-- Returns: one status per completion: 1 = acked, 0 = stale.
--
-- The common case, a success or drop without follow-ups, costs two calls per task (HMGET of
-- the token, SET of the result); its other writes are gathered and issued as one variadic
-- call per kind (HMGET of the queues, ZREM from leased, DEL of the task hashes, HDEL from the
-- id index, ZADD to the result index, EXISTS of result waiters). Gathered writes are flushed
-- before any other completion is applied, so the batch behaves as if applied in order.
local n = tonumber(ARGV[3])
local out = {}

-- Pass 1: where each completion starts, and the queues of all ids in one call.
local starts, ids = {}, {}
local i = 4
for k = 1, n do
  starts[k] = i
  ids[k] = ARGV[i]
  i = i + 11 + tonumber(ARGV[i + 10]) * ENV_FIELDS
end
local queues = {}
do
  local s = 1
  while s <= n do
    local e = s + CHUNK - 1
    if e > n then e = n end
    local got = redis.call('HMGET', IDS, unpack(ids, s, e))
    for j = 1, #got do queues[s + j - 1] = got[j] end
    s = e + 1
  end
end

-- Gathered writes of fast-path completions.
local leased = {}      -- queue -> ids to remove from its leased index
local task_keys = {}   -- task hashes to delete
local gone = {}        -- ids to remove from the id index
local scored = {}      -- score, id pairs for the result index
local waited = {}      -- result-waiting keys, and their ids
local waited_ids = {}
local finished = {}    -- ids completed in this call (a second completion is stale)

local function flush()
  for q, list in pairs(leased) do batched({'ZREM', qkey(q, 'leased')}, list) end
  batched({'DEL'}, task_keys)
  batched({'HDEL', IDS}, gone)
  batched({'ZADD', RESULTS}, scored)
  if #waited > 0 then
    local any = 0
    local s = 1
    while s <= #waited do
      local e = s + CHUNK - 1
      if e > #waited then e = #waited end
      any = any + redis.call('EXISTS', unpack(waited, s, e))
      s = e + 1
    end
    if any > 0 then
      for j, id in ipairs(waited_ids) do
        if redis.call('EXISTS', waited[j]) == 1 then
          local w = rwkey(id)
          redis.call('LPUSH', w, '1')
          redis.call('LTRIM', w, 0, 0)
          redis.call('PEXPIRE', w, WAKE_TTL_MS)
        end
      end
    end
  end
  leased, task_keys, gone, scored, waited, waited_ids = {}, {}, {}, {}, {}, {}
end

for k = 1, n do
  i = starts[k]
  local id, token, kind = ARGV[i], ARGV[i + 1], ARGV[i + 2]
  local eta = tonumber(ARGV[i + 3])
  local v, fk, fm, fa = ARGV[i + 4], ARGV[i + 5], ARGV[i + 6], ARGV[i + 7]
  local rexp, px = ARGV[i + 8], tonumber(ARGV[i + 9])
  local nf = tonumber(ARGV[i + 10])
  local first_follow = i + 11
  local q = queues[k]
  if finished[id] then q = false end
  if q and (kind == 'ok' or kind == 'drop') and nf == 0 then
    -- The fast path: gather.
    local tk = tkey(q, id)
    local f = redis.call('HMGET', tk, 'tok', 'uk')
    if f[1] ~= token then
      out[k] = 0
    else
      finished[id] = true
      local l = leased[q]
      if not l then
        l = {}
        leased[q] = l
      end
      l[#l + 1] = id
      task_keys[#task_keys + 1] = tk
      gone[#gone + 1] = id
      local uk = f[2]
      if uk and uk ~= '' and redis.call('HGET', UNIQ, uk) == id then
        redis.call('HDEL', UNIQ, uk)
      end
      local payload = v
      if fk ~= '' then payload = fm end
      local value = rexp .. '|' .. fk .. '|' .. fa .. '|' .. payload
      if px > 0 then
        redis.call('SET', rkey(id), value, 'PX', px)
      else
        redis.call('SET', rkey(id), value)
      end
      scored[#scored + 1] = (rexp == '') and '+inf' or rexp
      scored[#scored + 1] = id
      waited[#waited + 1] = waitkey(id)
      waited_ids[#waited_ids + 1] = id
      out[k] = 1
    end
  else
    flush()
    local tk = q and tkey(q, id)
    -- tok uk pri seq att dlv name
    local f = q and redis.call('HMGET', tk, 'tok', 'uk', 'pri', 'seq', 'att', 'dlv', 'name')
    if (not q) or f[1] ~= token then
      out[k] = 0
    else
      finished[id] = true
      if kind == 'retry' or kind == 'defer' then
        redis.call('ZREM', qkey(q, 'leased'), id)
        local att, dlv = tonumber(f[5]), tonumber(f[6])
        if kind == 'retry' then
          att = att + 1
        elseif dlv > 0 then
          dlv = dlv - 1
        end
        redis.call('HSET', tk, 'tok', '', 'exp', 0, 'run', eta, 'att', att, 'dlv', dlv)
        place(q, id, tonumber(f[3]), tonumber(f[4]), eta)
        wake(q)
      else
        if kind == 'dead' then
          bury(id, q, f[7], redis.call('HGET', tk, 'raw'), fk, fm, fa)
        end
        remove(q, id, f[2], true)
        write_result(id, v, fk, fm, fa, rexp, px)
        for j = 0, nf - 1 do
          insert_at(first_follow + j * ENV_FIELDS)
        end
      end
      out[k] = 1
    end
  end
end
flush()
finish()
return out
