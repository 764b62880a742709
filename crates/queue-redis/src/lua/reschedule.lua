-- reschedule.lua: moves a pending, unleased task to a new eta.
-- KEYS: none (see common.lua)
-- ARGV[3]: id   ARGV[4]: eta ms
-- Returns: 1 if found and moved, else 0.
local id, eta = ARGV[3], tonumber(ARGV[4])
local q = redis.call('HGET', IDS, id)
if not q then return 0 end
local k = Q(q)
local t = parse_task(redis.call('HGET', k.task, id))
-- A pending task in neither ready nor scheduled is leased.
if not t or not (redis.call('ZSCORE', k.ready, id) or redis.call('ZSCORE', k.scheduled, id)) then
  return 0
end
unplace(q, id)
redis.call('HSET', k.task, id, make_task(t.score, eta, t.lim, t.name, t.raw))
place(q, id, t.score, eta)
wake(q)
finish()
return 1
