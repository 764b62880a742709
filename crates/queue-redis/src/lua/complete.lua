-- complete.lua: applies a batch of completions; each is fenced by its lease token.
-- KEYS: none (see common.lua)
-- ARGV[3]: n, the number of completions
-- Then per completion, 11 fields: id token kind eta_ms value fail_kind fail_message
--   fail_attempts result_expires_ms_or_empty result_pexpire_ms follow_up_count
--   kind: "ok" | "retry" | "defer" | "dead" | "drop"
-- followed by follow_up_count envelopes of 10 fields each (as in enqueue.lua).
-- Returns: one status per completion: 1 = acked, 0 = stale.
local n = tonumber(ARGV[3])
local i = 4
local out = {}
for _ = 1, n do
  local id, token, kind = ARGV[i], ARGV[i + 1], ARGV[i + 2]
  local eta = tonumber(ARGV[i + 3])
  local v, fk, fm, fa = ARGV[i + 4], ARGV[i + 5], ARGV[i + 6], ARGV[i + 7]
  local rexp, px = ARGV[i + 8], tonumber(ARGV[i + 9])
  local nf = tonumber(ARGV[i + 10])
  local first_follow = i + 11
  i = first_follow + nf * ENV_FIELDS
  local q = redis.call('HGET', IDS, id)
  local tk = q and tkey(q, id)
  if (not q) or redis.call('HGET', tk, 'tok') ~= token then
    out[#out + 1] = 0
  else
    if kind == 'retry' or kind == 'defer' then
      unplace(q, id)
      redis.call('HSET', tk, 'tok', '', 'exp', 0, 'run', eta)
      if kind == 'retry' then
        redis.call('HINCRBY', tk, 'att', 1)
      else
        local dlv = tonumber(redis.call('HGET', tk, 'dlv'))
        if dlv > 0 then redis.call('HSET', tk, 'dlv', dlv - 1) end
      end
      local f = redis.call('HMGET', tk, 'pri', 'seq')
      place(q, id, tonumber(f[1]), tonumber(f[2]), eta)
      wake(q)
    else
      local f = remove(q, id)
      if kind == 'dead' and f then
        bury(id, q, f[2], f[1], fk, fm, fa)
      end
      write_result(id, v, fk, fm, fa, rexp, px)
      for k = 0, nf - 1 do
        insert_at(first_follow + k * ENV_FIELDS)
      end
    end
    out[#out + 1] = 1
  end
end
flush_wakes()
return out
