-- requeue_expired.lua: returns at most `max` tasks of a queue whose lease ran out to ready.
-- KEYS[1]: a key of the queue (see common.lua)
-- ARGV[3]: queue   ARGV[4]: max
-- Returns: how many were returned.
local q = ARGV[3]
local moved = promote_expired(q, tonumber(ARGV[4]))
if moved > 0 then wake(q) end
finish()
return moved
