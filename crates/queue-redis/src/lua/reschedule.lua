-- reschedule.lua: moves a pending, unleased task to a new eta.
-- KEYS[1]: a key of the queue (see common.lua)
-- ARGV[3]: queue   ARGV[4]: id   ARGV[5]: eta ms
-- Returns: 1 if found (a pending task of this queue) and moved, else 0.
local q, id, eta = ARGV[3], ARGV[4], tonumber(ARGV[5])
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
