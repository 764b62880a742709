-- peek.lua (read only): how long an idle consumer of a queue may block.
-- KEYS[1]: a key of the queue (see common.lua)
-- ARGV[3]: queue
-- Returns: 0 if work is due now; otherwise milliseconds until the next scheduled task or lease
-- expiry; -1 if the queue has neither; -2 if the queue is paused (whatever it holds).
local q = ARGV[3]
if paused(q) then return -2 end
if redis.call('ZCARD', qkey(q, 'ready')) > 0 then return 0 end
local next_at = nil
for _, suffix in ipairs({'scheduled', 'leased'}) do
  local first = redis.call('ZRANGE', qkey(q, suffix), 0, 0, 'WITHSCORES')
  if #first == 2 then
    local t = tonumber(first[2])
    if next_at == nil or t < next_at then next_at = t end
  end
end
if next_at == nil then return -1 end
if next_at <= NOW then return 0 end
return next_at - NOW
