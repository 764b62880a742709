-- delete_result.lua: deletes a task's result and its wake-up token.
-- KEYS: none (see common.lua)
-- ARGV[3]: id
-- Returns: 1 if there was a result, else 0.
local id = ARGV[3]
local n = redis.call('DEL', rkey(id))
redis.call('ZREM', RESULTS, id)
redis.call('DEL', rwkey(id))
return n
