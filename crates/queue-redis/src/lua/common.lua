-- common.lua: helpers prepended to every Skiff script (see scripts.rs).
--
-- KEYS: none. Every key is built from ARGV[1], the store's key prefix, so one script call can
--       touch a queue's hash-tagged keys and the store's few global ones (single-node Redis;
--       see the crate docs, "Redis Cluster").
-- ARGV[1]: key prefix (e.g. "skiff")
-- ARGV[2]: now, in milliseconds since the Unix epoch, read from the store's Clock
-- ARGV[3..]: the script's own arguments (see each script's header)
--
-- Per queue Q (hash tag {Q}, one Cluster slot):
--   P:{Q}:ready      ZSET id -> (32767 - priority) * 2^37 + seq   (exact below 2^53)
--   P:{Q}:scheduled  ZSET id -> run_at ms
--   P:{Q}:leased     ZSET id -> lease expiry ms
--   P:{Q}:task:<id>  HASH raw pri seq run tok exp dlv att lim uk name
--   P:{Q}:seq        STRING counter for FIFO order within a priority
--   P:{Q}:dead       ZSET id -> dead-letter sequence (this queue's DLQ index)
--   P:{Q}:wake       LIST wake-up tokens for idle consumers (at most WAKE_MAX)
-- Global:
--   P:ids            HASH id -> queue, for every pending task
--   P:unique         HASH unique key -> id, while that task is pending
--   P:queues         SET of queue names ever used (registry for counts/flush)
--   P:result:<id>    STRING "<expires ms or empty>|<fail kind or empty>|<attempts>|<payload>"
--                    (payload: the output for a success, the message for a failure)
--   P:results        ZSET id -> expires_at ms (+inf = kept)
--   P:result-waiting:<id> STRING set (with an expiry) by a client waiting for the result
--   P:result-wake:<id> LIST one token, pushed when the result is written and someone waits
--   P:dead:<id>      HASH q task fk fm fa at raw
--   P:dead           ZSET id -> dead-letter sequence (all queues)
--   P:dead-seq       STRING counter
--   P:revoked        HASH "i:<id>" | "t:<name>" -> "<until ms or empty>|<once 0/1>"
--   P:lock:<name>    HASH o (owner) x (expires ms);  P:locks SET of lock names
--   P:rate:<key>     HASH w (window start ms) n (hits)

local P = ARGV[1]
local NOW = tonumber(ARGV[2])
local PRI_SPAN = 137438953472 -- 2^37: sequence numbers per priority level
local WAKE_MAX = 16
local WAKE_TTL_MS = 30000
local IDS = P .. ':ids'
local UNIQ = P .. ':unique'
local QUEUES = P .. ':queues'
local RESULTS = P .. ':results'
local DEAD = P .. ':dead'

local function qkey(q, suffix) return P .. ':{' .. q .. '}:' .. suffix end
local function tkey(q, id) return P .. ':{' .. q .. '}:task:' .. id end
local function rkey(id) return P .. ':result:' .. id end
local function rwkey(id) return P .. ':result-wake:' .. id end
local function waitkey(id) return P .. ':result-waiting:' .. id end
local function dkey(id) return P .. ':dead:' .. id end
local function ready_score(pri, seq) return (32767 - pri) * PRI_SPAN + seq end

local woken = {}
local function wake(q) woken[q] = (woken[q] or 0) + 1 end

-- Sequence numbers are read once per queue per call and written back by finish().
local seqs = {}
local function next_seq(q)
  local s = seqs[q]
  if not s then
    s = tonumber(redis.call('GET', qkey(q, 'seq')) or 0)
    redis.call('SADD', QUEUES, q)
  end
  s = s + 1
  seqs[q] = s
  return s
end

-- Every script that writes calls this last: wake-up tokens and sequence counters.
local function finish()
  for q, n in pairs(woken) do
    local k = qkey(q, 'wake')
    if n > WAKE_MAX then n = WAKE_MAX end
    for _ = 1, n do redis.call('LPUSH', k, '1') end
    redis.call('LTRIM', k, 0, WAKE_MAX - 1)
  end
  for q, seq in pairs(seqs) do redis.call('SET', qkey(q, 'seq'), string.format('%d', seq)) end
end

-- Runs `cmd` with the fixed arguments `head` followed by the items of `list`, in calls of at
-- most CHUNK items (never one `unpack` of an unbounded table). `step` keeps pairs together.
local CHUNK = 512
local function batched(head, list)
  local n = #list
  local s = 1
  while s <= n do
    local e = s + CHUNK - 1
    if e > n then e = n end
    local args = {}
    for j = 1, #head do args[j] = head[j] end
    local k = #head
    for j = s, e do
      k = k + 1
      args[k] = list[j]
    end
    redis.call(unpack(args))
    s = e + 1
  end
end

-- Puts a pending, unleased task into ready or scheduled.
local function place(q, id, pri, seq, run)
  if run <= NOW then
    redis.call('ZADD', qkey(q, 'ready'), ready_score(pri, seq), id)
  else
    redis.call('ZADD', qkey(q, 'scheduled'), run, id)
  end
end

local function unplace(q, id)
  redis.call('ZREM', qkey(q, 'ready'), id)
  redis.call('ZREM', qkey(q, 'scheduled'), id)
  redis.call('ZREM', qkey(q, 'leased'), id)
end

-- Stores one envelope. Returns 1, id when stored; 0, existing id for a duplicate.
local function insert(id, q, raw, pri, run, lim, uk, name, dlv, att)
  if redis.call('HEXISTS', IDS, id) == 1 then return 0, id end
  if uk ~= '' then
    local existing = redis.call('HGET', UNIQ, uk)
    if existing then return 0, existing end
  end
  local seq = next_seq(q)
  redis.call('HSET', tkey(q, id), 'raw', raw, 'pri', pri, 'seq', seq, 'run', run, 'tok', '',
    'exp', 0, 'dlv', dlv, 'att', att, 'lim', lim, 'uk', uk, 'name', name)
  redis.call('HSET', IDS, id, q)
  if uk ~= '' then redis.call('HSET', UNIQ, uk, id) end
  -- A new run of a task replaces an old result of the same id.
  if redis.call('DEL', rkey(id), rwkey(id)) > 0 then redis.call('ZREM', RESULTS, id) end
  place(q, id, pri, seq, run)
  wake(q)
  return 1, id
end

-- Reads ARGV[i .. i+9] as an envelope and inserts it. Returns flag, id.
local function insert_at(i)
  return insert(ARGV[i], ARGV[i + 1], ARGV[i + 2], tonumber(ARGV[i + 3]), tonumber(ARGV[i + 4]),
    ARGV[i + 5], ARGV[i + 6], ARGV[i + 7], ARGV[i + 8], ARGV[i + 9])
end
local ENV_FIELDS = 10

-- Removes a pending task and its index entries; releases its unique key `uk` (its stored
-- "uk" field). `leased`: it is known to be in the leased index only.
local function remove(q, id, uk, leased)
  if leased then
    redis.call('ZREM', qkey(q, 'leased'), id)
  else
    unplace(q, id)
  end
  redis.call('DEL', tkey(q, id))
  redis.call('HDEL', IDS, id)
  if uk and uk ~= '' and redis.call('HGET', UNIQ, uk) == id then
    redis.call('HDEL', UNIQ, uk)
  end
end

-- Writes a task's result: `fk` empty = success with output `v`, else a failure (kind fk,
-- message fm, attempts fa). `exp` = expiry ms or ''; `px` > 0 sets a real expiry (cleanup
-- only: reads compare `exp` with the store's clock). Wakes waiters that flagged themselves.
local function write_result(id, v, fk, fm, fa, exp, px)
  local payload = v
  if fk ~= '' then payload = fm end
  local value = exp .. '|' .. fk .. '|' .. fa .. '|' .. payload
  if px > 0 then
    redis.call('SET', rkey(id), value, 'PX', px)
  else
    redis.call('SET', rkey(id), value)
  end
  if exp == '' then
    redis.call('ZADD', RESULTS, '+inf', id)
  else
    redis.call('ZADD', RESULTS, exp, id)
  end
  if redis.call('EXISTS', waitkey(id)) == 1 then
    local w = rwkey(id)
    redis.call('LPUSH', w, '1')
    redis.call('LTRIM', w, 0, 0)
    redis.call('PEXPIRE', w, WAKE_TTL_MS)
  end
end

-- Moves a removed task to the dead-letter queue.
local function bury(id, q, name, raw, fk, fm, fa)
  local dk = dkey(id)
  local old_q = redis.call('HGET', dk, 'q')
  if old_q then redis.call('ZREM', qkey(old_q, 'dead'), id) end
  redis.call('DEL', dk)
  redis.call('HSET', dk, 'q', q, 'task', name, 'fk', fk, 'fm', fm, 'fa', fa, 'at', NOW, 'raw', raw)
  local seq = redis.call('INCR', P .. ':dead-seq')
  redis.call('ZADD', DEAD, seq, id)
  redis.call('ZADD', qkey(q, 'dead'), seq, id)
end

local function make_ready(q, id)
  local f = redis.call('HMGET', tkey(q, id), 'pri', 'seq')
  if f[1] then
    redis.call('ZADD', qkey(q, 'ready'), ready_score(tonumber(f[1]), tonumber(f[2])), id)
  end
end

-- Moves at most `limit` due scheduled tasks of q to ready. Returns how many.
local function promote_scheduled(q, limit)
  local sk = qkey(q, 'scheduled')
  local due = redis.call('ZRANGEBYSCORE', sk, '-inf', NOW, 'LIMIT', 0, limit)
  for _, id in ipairs(due) do
    redis.call('ZREM', sk, id)
    make_ready(q, id)
  end
  return #due
end

-- Returns at most `limit` tasks of q whose lease ran out to ready. Returns how many.
local function promote_expired(q, limit)
  local lk = qkey(q, 'leased')
  local due = redis.call('ZRANGEBYSCORE', lk, '-inf', NOW, 'LIMIT', 0, limit)
  for _, id in ipairs(due) do
    redis.call('ZREM', lk, id)
    redis.call('HSET', tkey(q, id), 'tok', '', 'exp', 0)
    make_ready(q, id)
  end
  return #due
end

-- The fields of a pending task as listed: {id, q, raw, pri, run, tok, exp, dlv, att, seq}.
local function task_row(q, id)
  local f = redis.call('HMGET', tkey(q, id), 'raw', 'pri', 'run', 'tok', 'exp', 'dlv', 'att', 'seq')
  if not f[1] then return nil end
  return {id, q, f[1], tonumber(f[2]), tonumber(f[3]), f[4], tonumber(f[5]), tonumber(f[6]),
    tonumber(f[7]), tonumber(f[8])}
end

-- ---------------------------------------------------------------------------------------------
