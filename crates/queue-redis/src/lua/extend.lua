-- extend.lua: moves the expiry of current leases to a new time; stale tokens are refused.
-- KEYS: none (see common.lua)
-- ARGV[3]: new expiry ms   ARGV[4..]: pairs id token
-- Returns: one status per lease: 1 = acked, 0 = stale.
local exp = tonumber(ARGV[3])
local out = {}
for i = 4, #ARGV, 2 do
  local id, token = ARGV[i], ARGV[i + 1]
  local q = redis.call('HGET', IDS, id)
  local member = lease_member(id, token)
  if q and redis.call('ZSCORE', qkey(q, 'leased'), member) then
    redis.call('ZADD', qkey(q, 'leased'), exp, member)
    out[#out + 1] = 1
  else
    out[#out + 1] = 0
  end
end
return out
