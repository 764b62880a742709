-- enqueue.lua: stores a batch of envelopes of one queue, respecting the ids and unique keys of
-- that queue's pending tasks.
-- KEYS[1]: a key of the queue (see common.lua)
-- ARGV[3]: n, the number of envelopes
-- ARGV[4..]: n groups of ENV_FIELDS (8): id queue priority run ord unique_key counts tail (see
--            `ENV_FIELDS` in common.lua)
-- Returns: flat array {k1, id1, k2, id2, ..., registered} of the envelopes not stored:
--   envelope k (1-based) is a duplicate of pending task id. Every envelope not named was
--   stored. The last entry is 1 if the queue's registration mark (P:{Q}:registered) exists,
--   else 0: the client then enters the queue in the registry (see common.lua).
--
-- No call per task: the ids are checked with one HMGET of the task hash (nil for a new id),
-- and the stored tasks are written with one variadic call per hash (see `stage` /
-- `store_staged` in common.lua). A unique key costs one HGET.
--
-- A batch of one task without a unique key or counts (what a web handler enqueues) takes a
-- short path of six calls and no staging tables: HSETNX both checks the id and stores the
-- task, so the sequence number is taken first (INCR; a duplicate then leaves a gap, which
-- FIFO order does not mind). A sequence counter that INCR cannot read (garbage) sends the call
-- down the general path, which reads garbage as 0, before anything is written.
local n = tonumber(ARGV[3])
local q = ARGV[5]

if n == 1 and ARGV[9] == '' and ARGV[10] == '0' then
  local id, pri, run = ARGV[4], ARGV[6], ARGV[7]
  local k = Q(q)
  local seq = redis.pcall('INCR', k.seq)
  if type(seq) == 'number' then
    local registered = redis.call(EXISTS, k.registered)
    local score
    if pri == '0' then
      score = format('%d', seq) .. ARGV[8]
    else
      score = ready_score(tonumber(pri), seq)
    end
    if redis.call('HSETNX', k.task, id, score .. '|' .. ARGV[11]) == 0 then
      return {1, id, registered}
    end
    if run == '0' then
      redis.call('ZADD', k.ready, score, id)
    else
      redis.call('ZADD', k.scheduled, run, id)
    end
    -- A new run of a task replaces an old result of the same id.
    if redis.call('HDEL', k.results, id) > 0 then redis.call('ZREM', k['result-exp'], id) end
    push_wake(q, 1)
    return {registered}
  end
end

local out, no = {}, 0
local ids = {}
for k = 1, n do ids[k] = ARGV[4 + (k - 1) * ENV_FIELDS] end
local held = {}
if n > 0 then held = hmget(qkey(q, 'task'), ids) end

local b = new_batch()
for k = 1, n do
  local i = 4 + (k - 1) * ENV_FIELDS
  local id, uk = ARGV[i], ARGV[i + 5]
  if ARGV[i + 1] ~= q then return redis.error_reply('skiff: one enqueue call, one queue') end
  local h = nil
  if held[k] or b.taken[q .. '|' .. id] then
    h = id
  elseif uk ~= '' then
    h = unique_holder(b, q, uk)
  end
  if h then
    out[no + 1], out[no + 2] = k, h
    no = no + 2
  else
    stage(b, i)
  end
end
store_staged(b)
finish()
out[no + 1] = redis.call(EXISTS, qkey(q, 'registered'))
return out
