-- bury.lua: dead-letters leased tasks whose envelope the client could not decode.
-- KEYS: none (see common.lua)
-- ARGV[3]: queue   ARGV[4..]: groups of 4: id token failure_kind reason
-- Returns: how many were dead-lettered (a stale token is skipped).
local q = ARGV[3]
local moved = 0
for i = 4, #ARGV, 4 do
  local id, token, fk, fm = ARGV[i], ARGV[i + 1], ARGV[i + 2], ARGV[i + 3]
  if redis.call('HGET', tkey(q, id), 'tok') == token then
    local f = remove(q, id)
    if f then
      bury(id, q, '?', f[1], fk, fm, f[3])
      write_result(id, '', fk, fm, f[3], '', 0)
      moved = moved + 1
    end
  end
end
return moved
