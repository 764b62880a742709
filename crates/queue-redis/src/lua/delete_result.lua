-- delete_result.lua: deletes a task's result and its wake-up token.
-- KEYS[1]: a key of the queue (see common.lua)
-- ARGV[3]: queue   ARGV[4]: id
-- Returns: 1 if there was a result, else 0.
return delete_results(ARGV[3], {ARGV[4]})
