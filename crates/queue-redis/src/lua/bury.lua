-- bury.lua: dead-letters leased tasks whose envelope the client could not decode.
-- KEYS: none (see common.lua)
-- ARGV[3]: queue   ARGV[4..]: groups of 4: id token failure_kind reason
-- Returns: how many were dead-lettered (a stale token is skipped).
local q = ARGV[3]
local moved = 0
for i = 4, #ARGV, 4 do
  local id, token, fk, fm = ARGV[i], ARGV[i + 1], ARGV[i + 2], ARGV[i + 3]
  local f = redis.call('HMGET', tkey(q, id), 'tok', 'raw', 'att', 'uk')
  if f[1] == token then
    remove(q, id, f[4], true)
    bury(id, q, '?', f[2], fk, fm, f[3])
    write_result(id, '', fk, fm, f[3], '', 0)
    moved = moved + 1
  end
end
return moved
