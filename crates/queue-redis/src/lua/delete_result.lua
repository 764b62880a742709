-- delete_result.lua: deletes a task's result and its wake-up token.
-- KEYS: none (see common.lua)
-- ARGV[3]: id
-- Returns: 1 if there was a result, else 0.
return delete_results({ARGV[3]})
