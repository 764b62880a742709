-- fetch.lua: leases up to `max` due tasks of one queue, highest priority first, FIFO within a
-- priority. First moves at most `promote` due scheduled tasks and expired leases to ready (never
-- all of them: the work of one call is bounded). Tasks past their delivery limit are
-- dead-lettered (with a kept failure result) instead of returned.
-- KEYS: none (see common.lua)
-- ARGV[3]: queue   ARGV[4]: max   ARGV[5]: lease expiry ms   ARGV[6]: promote limit
-- ARGV[7 .. 6+max]: one fresh lease token per task that may be handed out
-- Returns: array of {id, raw, token, deliveries, attempts, priority}
--
-- Two calls per task handed out (HMGET, HSET); the leased index gets one variadic ZADD.
local q = ARGV[3]
local max = tonumber(ARGV[4])
local exp = tonumber(ARGV[5])
local limit = tonumber(ARGV[6])
promote_scheduled(q, limit)
promote_expired(q, limit)
local rk, lk = qkey(q, 'ready'), qkey(q, 'leased')
local out = {}
local lease = {}
local ti = 7
while #out < max do
  -- Pops exactly as many as are still wanted; poison tasks make another round.
  local popped = redis.call('ZPOPMIN', rk, max - #out)
  if #popped == 0 then break end
  for k = 1, #popped, 2 do
    local id = popped[k]
    local tk = tkey(q, id)
    local f = redis.call('HMGET', tk, 'raw', 'pri', 'att', 'lim', 'dlv')
    if f[1] then
      local dlv = tonumber(f[5]) + 1
      if dlv > tonumber(f[4]) then
        local g = redis.call('HMGET', tk, 'name', 'uk')
        remove(q, id, g[2], false)
        local msg = 'delivered ' .. (dlv - 1) .. ' times without completing (limit ' .. f[4] ..
          '); treated as poison'
        bury(id, q, g[1], f[1], 'delivery_limit', msg, f[3])
        write_result(id, '', 'delivery_limit', msg, f[3], '', 0)
      else
        local tok = ARGV[ti]
        ti = ti + 1
        redis.call('HSET', tk, 'tok', tok, 'exp', exp, 'dlv', dlv)
        lease[#lease + 1] = exp
        lease[#lease + 1] = id
        out[#out + 1] = {id, f[1], tok, dlv, tonumber(f[3]), tonumber(f[2])}
      end
    end
  end
end
batched({'ZADD', lk}, lease)
return out
