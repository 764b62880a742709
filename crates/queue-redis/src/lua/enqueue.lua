-- enqueue.lua: stores a batch of envelopes, respecting ids and unique keys of pending tasks.
-- KEYS: none (see common.lua)
-- ARGV[3]: n, the number of envelopes
-- ARGV[4..]: n groups of 10: id queue raw priority run_at_ms delivery_limit unique_key
--            task_name deliveries attempts
-- Returns: flat array {flag1, id1, flag2, id2, ...}; flag 1 = stored, 0 = duplicate of id.
--
-- One call per task (the HSET of its hash; plus an HGET for a unique key); the id index, old
-- results and the ready / scheduled indexes are written with one variadic call each.
local n = tonumber(ARGV[3])
local out = {}

local ids = {}
for k = 1, n do ids[k] = ARGV[4 + (k - 1) * ENV_FIELDS] end
local pending = {}
do
  local s = 1
  while s <= n do
    local e = s + CHUNK - 1
    if e > n then e = n end
    local got = redis.call('HMGET', IDS, unpack(ids, s, e))
    for j = 1, #got do pending[s + j - 1] = got[j] end
    s = e + 1
  end
end

local index = {}    -- id, queue pairs for the id index
local stale = {}    -- result keys of the stored ids
local stored = {}   -- the stored ids
local ready = {}    -- queue -> score, id pairs
local scheduled = {} -- queue -> run, id pairs
local taken = {}    -- ids stored by this call
local keys = {}     -- unique keys taken by this call -> id

local function add(t, q, a, b)
  local l = t[q]
  if not l then
    l = {}
    t[q] = l
  end
  l[#l + 1] = a
  l[#l + 1] = b
end

for k = 1, n do
  local i = 4 + (k - 1) * ENV_FIELDS
  local id, q, raw = ARGV[i], ARGV[i + 1], ARGV[i + 2]
  local pri, run = tonumber(ARGV[i + 3]), tonumber(ARGV[i + 4])
  local lim, uk, name, dlv, att = ARGV[i + 5], ARGV[i + 6], ARGV[i + 7], ARGV[i + 8], ARGV[i + 9]
  local holder = nil
  if pending[k] or taken[id] then
    holder = id
  elseif uk ~= '' then
    holder = keys[uk] or redis.call('HGET', UNIQ, uk)
  end
  if holder then
    out[#out + 1] = 0
    out[#out + 1] = holder
  else
    taken[id] = true
    local seq = next_seq(q)
    redis.call('HSET', tkey(q, id), 'raw', raw, 'pri', pri, 'seq', seq, 'run', run, 'tok', '',
      'exp', 0, 'dlv', dlv, 'att', att, 'lim', lim, 'uk', uk, 'name', name)
    index[#index + 1] = id
    index[#index + 1] = q
    if uk ~= '' then
      keys[uk] = id
      redis.call('HSET', UNIQ, uk, id)
    end
    stale[#stale + 1] = rkey(id)
    stale[#stale + 1] = rwkey(id)
    stored[#stored + 1] = id
    if run <= NOW then
      add(ready, q, ready_score(pri, seq), id)
    else
      add(scheduled, q, run, id)
    end
    wake(q)
    out[#out + 1] = 1
    out[#out + 1] = id
  end
end

batched({'HSET', IDS}, index)
-- A new run of a task replaces an old result of the same id.
local old = 0
do
  local s = 1
  while s <= #stale do
    local e = s + CHUNK - 1
    if e > #stale then e = #stale end
    old = old + redis.call('DEL', unpack(stale, s, e))
    s = e + 1
  end
end
if old > 0 then batched({'ZREM', RESULTS}, stored) end
for q, l in pairs(ready) do batched({'ZADD', qkey(q, 'ready')}, l) end
for q, l in pairs(scheduled) do batched({'ZADD', qkey(q, 'scheduled')}, l) end
finish()
return out
