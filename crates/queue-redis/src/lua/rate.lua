-- rate.lua: counts one hit against a fixed-window rate limit.
-- KEYS[1]: P:rate:<key>, the only key it touches (a slot of its own)
-- ARGV[3]: key   ARGV[4]: window start ms   ARGV[5]: limit   ARGV[6]: real pexpire ms
-- Returns: 1 if allowed (and counted), 0 if the window is full.
local rk = KEY1
local start, limit = ARGV[4], tonumber(ARGV[5])
local f = redis.call('HMGET', rk, 'w', 'n')
local n = 0
if f[1] == start then n = count(f[2]) end
-- A hit from an older window (a client whose clock is behind, a call that waited) is refused,
-- never allowed to move the window back and reset its count. A window that is not a number
-- is replaced.
local w = stamp(f[1])
if w and w > tonumber(start) then return 0 end
if n >= limit then return 0 end
redis.call('HSET', rk, 'w', start, 'n', n + 1)
redis.call('PEXPIRE', rk, ARGV[6])
return 1
