-- reschedule.lua: moves a pending, unleased task to a new eta.
-- KEYS: none (see common.lua)
-- ARGV[3]: id   ARGV[4]: eta ms
-- Returns: 1 if found and moved, else 0.
local id, eta = ARGV[3], tonumber(ARGV[4])
local q = redis.call('HGET', IDS, id)
if not q then return 0 end
local tk = tkey(q, id)
local f = redis.call('HMGET', tk, 'tok', 'pri', 'seq')
if not f[2] or f[1] ~= '' then return 0 end
unplace(q, id)
redis.call('HSET', tk, 'run', eta)
place(q, id, tonumber(f[2]), tonumber(f[3]), eta)
wake(q)
finish()
return 1
