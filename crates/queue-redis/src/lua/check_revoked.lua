-- check_revoked.lua: whether a revocation applies to each task; uses up `once` revocations and
-- drops lapsed ones.
-- KEYS[1]: a key of {~revoked} (see common.lua)
-- ARGV[3..]: pairs id task_name
-- Returns: one flag per task: 1 = revoked.
local rev, rev_exp = wide('revoked', 'revoked'), wide('revoked', 'revoked-exp')
local function forget(field)
  redis.call('HDEL', rev, field)
  redis.call('ZREM', rev_exp, field)
end
local function applies(field)
  local v = redis.call('HGET', rev, field)
  if not v then return false end
  local until_ms, once = string.match(v, '^(%d*)|(%d)$')
  if not once then
    -- Not a revocation this store wrote: it revokes nothing, and goes.
    redis.log(redis.LOG_WARNING, 'skiff: removed an unreadable revocation ' .. field)
    forget(field)
    return false
  end
  if until_ms ~= '' and tonumber(until_ms) <= NOW then
    forget(field)
    return false
  end
  if once == '1' then forget(field) end
  return true
end
local out = {}
for i = 3, #ARGV, 2 do
  if applies('i:' .. ARGV[i]) or applies('t:' .. ARGV[i + 1]) then
    out[#out + 1] = 1
  else
    out[#out + 1] = 0
  end
end
return out
