-- reschedule.lua: moves a pending, unleased task to a new eta.
-- KEYS: none (see common.lua)
-- ARGV[3]: id   ARGV[4]: eta ms
-- Returns: 1 if found and moved, else 0.
local id, eta = ARGV[3], tonumber(ARGV[4])
local q = redis.call('HGET', IDS, id)
if not q then return 0 end
local k = Q(q)
local score, _, name = parse_meta(redis.call('HGET', k.meta, id))
if not score or redis.call('HEXISTS', k.tok, id) == 1 then return 0 end
unplace(q, id)
redis.call('HSET', k.meta, id, make_meta(score, eta, name))
place(q, id, score, eta)
wake(q)
finish()
return 1
