-- bury.lua: dead-letters leased tasks whose envelope the client could not decode.
-- KEYS[1]: a key of the queue (see common.lua)
-- ARGV[3]: queue   ARGV[4..]: groups of 4: id token failure_kind reason
-- Returns: how many were dead-lettered (a stale token is skipped).
local q = ARGV[3]
local moved = 0
for i = 4, #ARGV, 4 do
  local id, token, fk, fm = ARGV[i], ARGV[i + 1], ARGV[i + 2], ARGV[i + 3]
  local k = Q(q)
  local member = lease_member(id, token)
  if redis.call('ZSCORE', k.leased, member) then
    local v = redis.call('HGET', k.task, id)
    local t = parse_task(v)
    -- The envelope as enqueued; the whole stored value when its header cannot be read.
    local raw = t and t.raw or v or ''
    local att = count(redis.call('HGET', k.att, id))
    remove(q, id, member)
    bury(id, q, '?', raw, fk, fm, att)
    write_result(q, id, '', fk, fm, att, dead_result_expiry())
    moved = moved + 1
  end
end
return moved
