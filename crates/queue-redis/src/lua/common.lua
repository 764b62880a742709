-- common.lua: the key layout and the helpers every Skiff script uses (see scripts.rs: they are
-- loaded once as a Redis Functions library with each script a function of it, or prepended to
-- each script run with EVALSHA on servers without Functions). `init(args)` starts each call.
--
-- KEYS[1]: one key of the hash tag the call works in. The client routes the call by it (Redis
--          Cluster sends it to the master that owns its slot), and every key the call builds
--          carries the same tag: `init` remembers it and `tagged` refuses any other, so a call
--          that would touch two slots fails at once, on a single node too.
-- ARGV[1]: key prefix (e.g. "skiff")
-- ARGV[2]: now, in milliseconds since the Unix epoch, read from the store's Clock
-- ARGV[3..]: the script's own arguments (see each script's header)
--
-- A pending task is a few fields of its queue's task hash, not a key of its own: a batch of
-- 256 tasks is then one variadic HMGET / HSET / HDEL instead of 256 calls, which is what the
-- hot path's speed rests on. What every task has is one field of one hash, so that it is
-- large, hence a hash table (a small hash is a listpack, searched linearly); what few tasks
-- have (deliveries after a lost lease, attempts after a retry, a unique key) is in hashes of
-- their own, which cost nothing to read or clear while they do not exist (see `sparse`).
--
-- Garbage in the store (a value written by hand, a bug, a disk error) must not make a script
-- fail halfway: a Lua runtime error keeps the writes made before it. So every stored value is
-- read with a parser that cannot fail (`parse_task` and `task_lim` answer nil, `count` 0,
-- `stamp` nil), every call reads what it needs before its first write, and what cannot be read
-- is dead-lettered or skipped, never left in no index (tests/behaviour/garbage.rs).
--
-- Numbers given to redis.call are strings: Redis formats a Lua number with "%.17g" and
-- parses it back, which cost more than the rest of a ZADD.
--
-- Per queue Q (hash tag {Q}, one Cluster slot): everything one task's lifecycle writes.
--   P:{Q}:ready      ZSET id -> ready score seq - priority * 2^37 (exact below 2^53; small, so
--                    cheap to parse, for the default priority 0)
--   P:{Q}:scheduled  ZSET id -> run_at ms
--   P:{Q}:leased     ZSET "<id>|<lease token>" -> lease expiry ms (the member is the fence: a
--                    completion or renewal with another token finds no member)
--   P:{Q}:task       HASH, per pending task (a field here is what "pending" means):
--                    <id>   -> "<ready score>|<run_at ms>|<delivery limit>|<name length>|"
--                              followed by the task name and the envelope bytes as enqueued
--                              (the counts below override the envelope's own)
--   P:{Q}:dlv        HASH id -> deliveries that ended without an outcome (a lease ran out) or
--                    with a retry, for tasks with any (absent: 0). A fetch does not write it:
--                    the delivery it hands out is this count + 1.
--   P:{Q}:att        HASH id -> attempts so far, for tasks with any (absent: 0)
--   P:{Q}:uk         HASH id -> unique key, for tasks that have one
--   P:{Q}:unique     HASH unique key -> id, while that task is pending (unique keys are per
--                    queue)
--   P:{Q}:seq        STRING counter for FIFO order within a priority
--   P:{Q}:wake       LIST wake-up tokens for idle consumers (at most 2 * WAKE_MAX)
--   P:{Q}:progress   HASH id -> the newest progress (msgpack) a worker reported for the task
--                    under its current lease (deleted with the task's other fields)
--   P:{Q}:paused     STRING "1" while the queue is paused (fetch hands out nothing)
--   P:{Q}:results    HASH id -> "<expires ms or empty>|<fail kind or empty>|<attempts>|<payload>"
--                    (payload: the output for a success, the message for a failure)
--   P:{Q}:result-exp ZSET id -> expires_at ms, for results with a TTL (purge_expired reads it)
--   P:{Q}:result-waiters ZSET id -> until ms: clients waiting for that id's result
--   P:{Q}:result-wake:<id> LIST one token, pushed when the result is written and someone waits
--   P:{Q}:dead       ZSET id -> dead-letter sequence (the queue's dead-letter index)
--   P:{Q}:dead-seq   STRING counter
--   P:{Q}:dead:<id>  HASH q task fk fm fa at raw
--   P:{Q}:outbox     HASH follow-up id -> "<written at ms>|<envelope>": follow-ups for other
--                    queues, written with the completion that made them and moved to their
--                    queues by the client right after (or by purge_expired after a crash)
--   P:{Q}:registered STRING "1" with a real TTL (`REGISTERED_TTL` in hot.rs, 10 min): the
--                    queue was entered in the registry (P:{~queues}:queues) less than that
--                    long ago. The enqueue script only reads it; the client enters the queue
--                    in the registry when it is missing and then sets it (see `hot.rs`), so
--                    the registry is written once per queue and TTL, not per enqueue, and a
--                    registry lost (a failover, a hand-made DEL) is written again within the
--                    TTL by the next enqueue of each queue.
-- Store-wide, each group under a hash tag of its own (never in a call with a queue's keys):
--   P:{~queues}:queues       SET of queue names ever used (registry for counts/flush)
--   P:{~queues}:layout       STRING the key layout's version ("2")
--   P:{~revoked}:revoked     HASH "i:<id>" | "t:<name>" -> "<until ms or empty>|<once 0/1>"
--   P:{~revoked}:revoked-exp ZSET field of revoked -> until ms (revocations with an end)
--   P:{~locks}:lock:<name>   HASH o (owner) x (expires ms)
--   P:{~locks}:lock-exp      ZSET lock name -> expires ms
--   P:{~workers}:workers     HASH worker id -> its newest heartbeat (an encoded WorkerStatus)
--   P:{~workers}:worker-exp  ZSET worker id -> live until ms (cleaned up CLEANUP at a time)
--   P:{~workers}:cancel      ZSET task id -> cancel request kept until ms
--   P:rate:<key>             HASH w (window start ms) n (hits): a key (and slot) of its own

-- Globals read in hot loops, as locals (a local is a register; a global a table lookup). Set
-- by `init`: while a Functions library loads, only a reduced `redis` table is visible.
local redis, tonumber, unpack, ipairs, pairs, format, match, sub, setmetatable
local EXISTS = 'EXISTS'
local PRI_SPAN = 137438953472 -- 2^37: sequence numbers per priority level
local WAKE_MAX = 16
local WAKE_TTL_MS = 30000
-- Expired workers and cancel requests removed per call at most (see `expire_some`).
local CLEANUP = 100

-- The state of one call, set by `init`: its arguments, the store's key prefix, its hash tag,
-- now, and what the call has gathered so far (wake-ups, sequence numbers; each table made on
-- first use, as most calls need none: no garbage for Lua to collect per call).
local ARGV, P, NOW, TAG, KEY1
local woken, seqs, bases

local function init(keys, args)
  local G = _G
  redis, tonumber, unpack, ipairs, pairs = G.redis, G.tonumber, G.unpack, G.ipairs, G.pairs
  setmetatable = G.setmetatable
  format, match, sub = G.string.format, G.string.match, G.string.sub
  ARGV = args
  P = args[1]
  NOW = tonumber(args[2])
  KEY1 = keys[1] or ''
  TAG = match(KEY1, '{([^}]*)}')
  woken, seqs, bases = nil, nil, nil
end

-- Refuses a key of hash tag `t` in a call routed by another tag (it could be another slot).
local function tagged(t)
  if t ~= TAG then
    error('skiff: a call routed by {' .. tostring(TAG) .. '} would touch a key of {' .. t .. '}')
  end
end

-- Key `name` of the store-wide group `group` (tag {~group}): see the layout above.
local function wide(group, name)
  tagged('~' .. group)
  return P .. ':{~' .. group .. '}:' .. name
end

-- The keys of queue q, by suffix: each built on first use (a one-task enqueue uses 6 of the
-- 19) and kept for later calls by prefix and queue while the Functions library stays loaded
-- (at most KEY_CACHE queues, then the cache starts afresh; under EVALSHA every call starts
-- afresh), so a queue's calls build no key names and leave no garbage. A suffix not in
-- QUEUE_KEYS is a bug, refused rather than made into a key.
local QUEUE_KEYS = {'ready', 'scheduled', 'leased', 'seq', 'dead', 'wake', 'task', 'dlv', 'att',
  'uk', 'progress', 'unique', 'paused', 'results', 'result-exp', 'result-waiters', 'dead-seq',
  'outbox', 'registered'}
local KNOWN = {}
for i = 1, #QUEUE_KEYS do KNOWN[QUEUE_KEYS[i]] = true end
local KEY_OF = {__index = function(k, s)
  if not KNOWN[s] then error('skiff: no queue key ' .. tostring(s)) end
  local v = k.base .. s
  k[s] = v
  return v
end}
local KEY_CACHE = 256
local key_cache, key_cached = {}, 0
local function Q(q)
  if q ~= TAG then tagged(q) end
  local per_prefix = key_cache[P]
  if not per_prefix then
    per_prefix = {}
    key_cache[P] = per_prefix
  end
  local k = per_prefix[q]
  if not k then
    if key_cached >= KEY_CACHE then
      per_prefix = {}
      key_cache, key_cached = {[P] = per_prefix}, 0
    end
    k = setmetatable({base = P .. ':{' .. q .. '}:'}, KEY_OF)
    per_prefix[q] = k
    key_cached = key_cached + 1
  end
  return k
end
local function qkey(q, suffix) return Q(q)[suffix] end
local function rwkey(q, id) return Q(q).base .. 'result-wake:' .. id end
local function dkey(q, id) return Q(q).base .. 'dead:' .. id end
-- The ready score of priority `pri` and sequence number `seq`, as the string ZADD takes.
local function ready_score(pri, seq) return format('%d', seq - pri * PRI_SPAN) end

-- A task's stored value (see the layout above) and back. `parse_task` returns nil for a value
-- it cannot read (garbage in the store).
local function make_task(score, run, lim, name, raw)
  return format('%s|%d|%s|%d|', score, run, lim, #name) .. name .. raw
end
local function parse_task(v)
  if not v then return nil end
  local s, r, l, nl, at = match(v, '^(%-?%d+%.?%d*)|(%-?%d+)|(%d+)|(%d+)|()')
  if not at or #s > 24 or #r > 18 or #l > 10 then return nil end
  nl = tonumber(nl)
  return {score = s, run = tonumber(r), lim = tonumber(l),
    name = sub(v, at, at + nl - 1), raw = sub(v, at + nl)}
end
-- Just the ready score (a string), or the delivery limit, of a stored value (hot paths).
-- Both answer nil for a value whose header they cannot read.
local function task_score(v)
  local s = v and match(v, '^(%-?%d+%.?%d*)|')
  if s and #s <= 24 then return s end
  return nil
end
local function task_lim(v) return tonumber(match(v, '^%-?%d+%.?%d*|%-?%d+|(%d+)|')) end

-- A stored count (deliveries, attempts, a sequence number) as a whole number from 0; 0 for
-- anything else (garbage reads as "none yet", so it cannot stop a task).
local function count(x)
  local n = tonumber(x)
  if not n or n ~= n or n < 0 or n > 9007199254740992 or n % 1 ~= 0 then return 0 end
  return n
end

-- A stored time in ms (a lock's or a revocation's end), or nil if it is not a number.
local function stamp(x)
  local n = tonumber(x)
  if not n or n ~= n then return nil end
  return n
end

-- The id of a lease member "<id>|<token>" (nil for garbage without a token).
local function member_id(m) return match(m, '^([^|]+)|') end

local function wake(q)
  if not woken then woken = {} end
  woken[q] = (woken[q] or 0) + 1
end

-- Sequence numbers are read once per queue per call and written back by finish().
local function next_seq(q)
  if not seqs then seqs = {} end
  local s = seqs[q]
  if not s then
    s = count(redis.call('GET', qkey(q, 'seq')))
  end
  s = s + 1
  seqs[q] = s
  return s
end

-- Pushes n wake-up tokens (at most WAKE_MAX) to queue q's wake list. The list holds at most
-- 2 * WAKE_MAX: LPUSH answers its length, and only past that is it trimmed back to WAKE_MAX,
-- so while no consumer waits (the list stays full) one call in WAKE_MAX + 1 trims, not each.
local function push_wake(q, n)
  local k = qkey(q, 'wake')
  if n > WAKE_MAX then n = WAKE_MAX end
  local len = 0
  for _ = 1, n do len = redis.call('LPUSH', k, '1') end
  if len > 2 * WAKE_MAX then redis.call('LTRIM', k, 0, WAKE_MAX - 1) end
end

-- Every script that writes calls this last: wake-up tokens and sequence counters.
local function finish()
  if woken then
    for q, n in pairs(woken) do push_wake(q, n) end
  end
  if seqs then
    for q, seq in pairs(seqs) do redis.call('SET', qkey(q, 'seq'), format('%d', seq)) end
  end
end

-- Runs `cmd` with the fixed arguments `head` followed by the items of `list`, in calls of at
-- most CHUNK items (never one `unpack` of an unbounded table). Returns the sum of the integer
-- replies. Keep pairs together: CHUNK is even.
local CHUNK = 512
local function batched(head, list)
  local n = #list
  local s = 1
  local sum = 0
  while s <= n do
    local e = s + CHUNK - 1
    if e > n then e = n end
    local r
    if #head == 1 then
      r = redis.call(head[1], unpack(list, s, e))
    else
      r = redis.call(head[1], head[2], unpack(list, s, e))
    end
    if type(r) == 'number' then sum = sum + r end
    s = e + 1
  end
  return sum
end

-- HMGET of `fields` in calls of at most CHUNK: one value (or false) per field.
local function hmget(key, fields)
  local out = {}
  local n = #fields
  local s = 1
  while s <= n do
    local e = s + CHUNK - 1
    if e > n then e = n end
    local got = redis.call('HMGET', key, unpack(fields, s, e))
    for j = 1, #got do out[s + j - 1] = got[j] end
    s = e + 1
  end
  return out
end

-- HMGET of `fields` in hash `key` if that hash exists (a sparse one), else nothing: one value
-- (or nil) per field either way.
local function sparse(key, fields)
  if redis.call(EXISTS, key) == 0 then return {} end
  return hmget(key, fields)
end

-- Deletes the fields `ids` of hash `key` if it exists (a sparse one).
local function sparse_del(key, ids)
  if redis.call(EXISTS, key) == 1 then batched({'HDEL', key}, ids) end
end

-- Appends a, b to the list t[q] (created on first use).
local function add(t, q, a, b)
  local l = t[q]
  if not l then
    l = {}
    t[q] = l
  end
  l[#l + 1] = a
  if b ~= nil then l[#l + 1] = b end
end

-- Deletes every field of the tasks `ids` of queue q (their progress included).
local function drop_fields(q, ids)
  local k = Q(q)
  batched({'HDEL', k.task}, ids)
  sparse_del(k.dlv, ids)
  sparse_del(k.att, ids)
  sparse_del(k.uk, ids)
  sparse_del(k.progress, ids)
end

-- Whether queue q is paused.
local function paused(q) return redis.call(EXISTS, qkey(q, 'paused')) == 1 end

-- Removes at most `limit` members of ZSET `zset` whose score (an expiry in ms) is not after
-- now, and their fields of hash `hash` if given: bounded work per call; what is left goes at
-- later calls.
local function expire_some(zset, hash, limit)
  local gone = redis.call('ZRANGEBYSCORE', zset, '-inf', ARGV[2], 'LIMIT', 0, limit)
  if #gone == 0 then return end
  redis.call('ZREM', zset, unpack(gone))
  if hash then redis.call('HDEL', hash, unpack(gone)) end
end

-- Puts a pending, unleased task into ready (by its ready score, a string) or scheduled.
local function place(q, id, score, run)
  if run <= NOW then
    redis.call('ZADD', qkey(q, 'ready'), score, id)
  else
    redis.call('ZADD', qkey(q, 'scheduled'), format('%d', run), id)
  end
end

-- Takes an unleased task out of ready and scheduled.
local function unplace(q, id)
  redis.call('ZREM', qkey(q, 'ready'), id)
  redis.call('ZREM', qkey(q, 'scheduled'), id)
end

-- A lease's member of the leased index (see `member_id` for the way back).
local function lease_member(id, token) return id .. '|' .. token end

-- New tasks are staged in a batch and written with one variadic call per hash and queue
-- (`store_staged`). The batch also answers "is this id or unique key taken?" for tasks staged
-- but not yet written.
local function new_batch()
  return {per_q = {}, taken = {}, keys = {}}
end

-- The ready score of a new task of queue q with priority `pri` (a string), whose place in its
-- script call is `ord`. At the default priority it is "<s><ord>": one sequence number `s`
-- per queue and call, and the client's fixed-width fraction ".000", ".001", … (or "" for a
-- call of one task) keeps FIFO within the call; no number is formatted per task. Any other
-- priority takes a sequence number of its own.
local function new_score(q, pri, ord)
  if pri == '0' then
    if not bases then bases = {} end
    local base = bases[q]
    if not base then
      base = format('%d', next_seq(q))
      bases[q] = base
    end
    return base .. ord
  end
  return ready_score(tonumber(pri), next_seq(q))
end

-- Stages the new task whose fields start at ARGV[i] (see `ENV_FIELDS`); its id and unique key
-- are known to be free.
local function stage(b, i)
  local id, q, pri, run, ord, uk, counts, tail =
    ARGV[i], ARGV[i + 1], ARGV[i + 2], ARGV[i + 3], ARGV[i + 4], ARGV[i + 5], ARGV[i + 6],
    ARGV[i + 7]
  local w = b.per_q[q]
  if not w then
    w = {task = {}, n = 0, dlv = {}, att = {}, uk = {}, ready = {}, scheduled = {}, uniq = {},
      stored = {}}
    b.per_q[q] = w
  end
  local score = new_score(q, pri, ord)
  local t, n = w.task, w.n
  t[n + 1], t[n + 2] = id, score .. '|' .. tail
  w.n = n + 2
  if counts ~= '0' then
    local dlv, att = match(counts, '^(%d+)|(%d+)$')
    if dlv and dlv ~= '0' then add(w, 'dlv', id, dlv) end
    if att and att ~= '0' then add(w, 'att', id, att) end
  end
  if uk ~= '' then
    add(w, 'uk', id, uk)
    b.keys[q .. '|' .. uk] = id
    add(w, 'uniq', uk, id)
  end
  if run == '0' then
    add(w, 'ready', score, id)
  else
    add(w, 'scheduled', run, id)
  end
  b.taken[q .. '|' .. id] = true
  w.stored[#w.stored + 1] = id
  wake(q)
end

-- Whether task `id` is pending in queue q (its field of the task hash is what that means).
local function pending(q, id) return redis.call('HEXISTS', qkey(q, 'task'), id) == 1 end

-- The staged or pending task of queue q that holds unique key `uk`, or nil. An entry whose
-- holder is not pending (garbage, or left behind) holds nothing: the new task takes it over.
local function unique_holder(b, q, uk)
  local h = b.keys[q .. '|' .. uk]
  if h then return h end
  h = redis.call('HGET', qkey(q, 'unique'), uk)
  if h and pending(q, h) then return h end
  return nil
end

-- The id that holds `id` or unique key `uk` among pending and staged tasks of q, or nil.
local function holder(b, q, id, uk)
  if b.taken[q .. '|' .. id] or pending(q, id) then return id end
  if uk ~= '' then return unique_holder(b, q, uk) end
  return nil
end

-- Writes the staged tasks and empties the batch.
local function store_staged(b)
  for q, w in pairs(b.per_q) do
    local k = Q(q)
    batched({'HSET', k.task}, w.task)
    if #w.dlv > 0 then batched({'HSET', k.dlv}, w.dlv) end
    if #w.att > 0 then batched({'HSET', k.att}, w.att) end
    if #w.uk > 0 then batched({'HSET', k.uk}, w.uk) end
    if #w.ready > 0 then batched({'ZADD', k.ready}, w.ready) end
    if #w.scheduled > 0 then batched({'ZADD', k.scheduled}, w.scheduled) end
    if #w.uniq > 0 then batched({'HSET', k.unique}, w.uniq) end
    -- A new run of a task replaces an old result of the same id.
    if batched({'HDEL', k.results}, w.stored) > 0 then
      batched({'ZREM', k['result-exp']}, w.stored)
    end
  end
  b.per_q = {}
end

-- A new task is ENV_FIELDS arguments: id queue priority run ord unique_key counts tail, where
-- run is "0" when it is due at the call's now, else its run time in ms; ord its place in the
-- call (see `new_score`); counts "0", or "<deliveries>|<attempts>" when either is not 0; and
-- tail its stored value after the ready score (see the layout above).
local ENV_FIELDS = 8

-- Stores the new task whose fields start at ARGV[i] now. Returns 1, id when stored; 0, the
-- holder's id for a duplicate.
local function insert_at(i)
  local b = new_batch()
  local h = holder(b, ARGV[i + 1], ARGV[i], ARGV[i + 5])
  if h then return 0, h end
  stage(b, i)
  store_staged(b)
  return 1, ARGV[i]
end

-- Releases unique key `uk` of queue q if task `id` holds it.
local function release_unique(q, uk, id)
  if uk and uk ~= '' then
    local k = qkey(q, 'unique')
    if redis.call('HGET', k, uk) == id then redis.call('HDEL', k, uk) end
  end
end

-- Removes a pending task and its index entries and releases its unique key. `member`: its
-- lease's member of the leased index if it is leased (else it is in ready or scheduled).
local function remove(q, id, member)
  if member then
    redis.call('ZREM', qkey(q, 'leased'), member)
  else
    unplace(q, id)
  end
  local uk = redis.call('HGET', qkey(q, 'uk'), id)
  drop_fields(q, {id})
  release_unique(q, uk, id)
end

-- Wakes the clients waiting for any of the results `list[1]`, `list[1 + stride]`, … (one
-- ZCARD when nobody waits).
local function wake_waiters(q, list, stride)
  local waiters = qkey(q, 'result-waiters')
  if #list == 0 or redis.call('ZCARD', waiters) == 0 then return end
  local ids = list
  if stride and stride > 1 then
    ids = {}
    for j = 1, #list, stride do ids[#ids + 1] = list[j] end
  end
  local s = 1
  while s <= #ids do
    local e = s + CHUNK - 1
    if e > #ids then e = #ids end
    local scores = redis.call('ZMSCORE', waiters, unpack(ids, s, e))
    for j = 1, #scores do
      if scores[j] then
        local id = ids[s + j - 1]
        local w = rwkey(q, id)
        redis.call('LPUSH', w, '1')
        redis.call('LTRIM', w, 0, 0)
        redis.call('PEXPIRE', w, WAKE_TTL_MS)
        redis.call('ZREM', waiters, id)
      end
    end
    s = e + 1
  end
end

-- The stored form of a result: `fk` empty = success with output `v`, else a failure (kind
-- fk, message fm, attempts fa). `exp` = expiry ms or ''.
local function result_value(v, fk, fm, fa, exp)
  local payload = v
  if fk ~= '' then payload = fm end
  return exp .. '|' .. fk .. '|' .. fa .. '|' .. payload
end

-- How long the failure result of a task dead-lettered by the store itself (at fetch: poison,
-- undecodable, newer format) is kept, in ms: queue_core::storage::DEAD_RESULT_TTL (7 days;
-- a unit test of the crate checks that the two agree).
local DEAD_RESULT_TTL_MS = 604800000

-- When such a result expires (ms, as a string for write_result).
local function dead_result_expiry()
  return tostring(NOW + DEAD_RESULT_TTL_MS)
end

-- Writes one task's result and wakes its waiters.
local function write_result(q, id, v, fk, fm, fa, exp)
  local k = Q(q)
  redis.call('HSET', k.results, id, result_value(v, fk, fm, fa, exp))
  if exp == '' then
    redis.call('ZREM', k['result-exp'], id)
  else
    redis.call('ZADD', k['result-exp'], exp, id)
  end
  wake_waiters(q, {id})
end

-- Deletes results `ids` and their wake-up lists. Returns how many results there were.
local function delete_results(q, ids)
  local k = Q(q)
  local n = batched({'HDEL', k.results}, ids)
  batched({'ZREM', k['result-exp']}, ids)
  local wk = {}
  for j, id in ipairs(ids) do wk[j] = rwkey(q, id) end
  batched({'DEL'}, wk)
  return n
end

-- Moves a removed task to the dead-letter queue.
local function bury(id, q, name, raw, fk, fm, fa)
  local dk = dkey(q, id)
  -- The dead-letter sequence, read before any write (INCR fails on garbage); garbage restarts
  -- it after the newest dead letter.
  local seq_key = qkey(q, 'dead-seq')
  local seq = tonumber(redis.call('GET', seq_key) or 0)
  if not seq or seq ~= seq or seq % 1 ~= 0 then
    local last = redis.call('ZRANGE', qkey(q, 'dead'), -1, -1, 'WITHSCORES')
    seq = count(last[2])
  end
  seq = format('%d', seq + 1)
  redis.call('DEL', dk)
  redis.call('HSET', dk, 'q', q, 'task', name, 'fk', fk, 'fm', fm, 'fa', tostring(count(fa)),
    'at', NOW, 'raw', raw)
  redis.call('SET', seq_key, seq)
  redis.call('ZADD', qkey(q, 'dead'), seq, id)
end

-- Puts `ids` (taken out of scheduled or leased) into ready by their stored scores. Returns
-- the ids that were put back (an id without a stored task is skipped).
local function make_ready(q, ids)
  if #ids == 0 then return ids end
  local k = Q(q)
  local values = hmget(k.task, ids)
  local pairs_, placed = {}, {}
  for j, id in ipairs(ids) do
    local v = values[j]
    -- A value whose header cannot be read goes to the front of ready, so its next delivery
    -- dead-letters it (the client cannot decode it); an id without a value is an index
    -- leftover, dropped.
    local score = task_score(v) or (v and '0')
    if score then
      pairs_[#pairs_ + 1] = score
      pairs_[#pairs_ + 1] = id
      placed[#placed + 1] = id
    end
  end
  batched({'ZADD', k.ready}, pairs_)
  return placed
end

-- Moves at most `limit` due scheduled tasks of q to ready. Returns how many.
local function promote_scheduled(q, limit)
  local due = redis.call('ZRANGEBYSCORE', qkey(q, 'scheduled'), '-inf', NOW, 'LIMIT', 0, limit)
  batched({'ZREM', qkey(q, 'scheduled')}, due)
  make_ready(q, due)
  return #due
end

-- Returns at most `limit` tasks of q whose lease ran out to ready. Returns how many.
local function promote_expired(q, limit)
  local due = redis.call('ZRANGEBYSCORE', qkey(q, 'leased'), '-inf', NOW, 'LIMIT', 0, limit)
  local ids = {}
  for _, m in ipairs(due) do
    local id = member_id(m)
    if id then ids[#ids + 1] = id end
  end
  local dk = qkey(q, 'dlv')
  local dlvs = sparse(dk, ids)
  batched({'ZREM', qkey(q, 'leased')}, due)
  local counted = {}
  local placed = make_ready(q, ids)
  local at = {}
  for j, id in ipairs(ids) do at[id] = j end
  for _, id in ipairs(placed) do
    -- That delivery ended without an outcome: it counts.
    counted[#counted + 1] = id
    counted[#counted + 1] = format('%d', count(dlvs[at[id]]) + 1)
  end
  if #counted > 0 then batched({'HSET', dk}, counted) end
  return #due
end

-- The lease member and expiry of task `id` of q if it is leased (a scan of the leased index:
-- for admin reads only).
local function find_lease(q, id)
  local k = Q(q)
  if redis.call('ZSCORE', k.ready, id) or redis.call('ZSCORE', k.scheduled, id) then return nil end
  local cursor = '0'
  repeat
    local r = redis.call('ZSCAN', k.leased, cursor, 'MATCH', id .. '|*', 'COUNT', 1000)
    cursor = r[1]
    if #r[2] > 0 then return r[2][1], tonumber(r[2][2]) end
  until cursor == '0'
  return nil
end

-- The fields of a pending task as listed: {id, q, raw, pri, run, tok, exp, dlv, att, seq}.
-- `member`, `exp`: its lease, if leased.
local function task_row(q, id, member, exp)
  local k = Q(q)
  local t = parse_task(redis.call('HGET', k.task, id))
  if not t then return nil end
  local score = tonumber(t.score)
  local level = math.floor(score / PRI_SPAN)
  local tok = member and match(member, '|(.*)$') or ''
  local dlv = count(redis.call('HGET', k.dlv, id))
  -- A leased task is in its next delivery.
  if member then dlv = dlv + 1 end
  local att = redis.call('HGET', k.att, id)
  return {id, q, t.raw, -level, t.run, tok, exp or 0, dlv, count(att),
    score - level * PRI_SPAN}
end
