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
  -- tok uk pri seq att dlv name
  local f = q and redis.call('HMGET', tk, 'tok', 'uk', 'pri', 'seq', 'att', 'dlv', 'name')
  if (not q) or f[1] ~= token then
    out[#out + 1] = 0
  else
    if kind == 'retry' or kind == 'defer' then
      redis.call('ZREM', qkey(q, 'leased'), id)
      local att, dlv = tonumber(f[5]), tonumber(f[6])
      if kind == 'retry' then
        att = att + 1
      elseif dlv > 0 then
        dlv = dlv - 1
      end
      redis.call('HSET', tk, 'tok', '', 'exp', 0, 'run', eta, 'att', att, 'dlv', dlv)
      place(q, id, tonumber(f[3]), tonumber(f[4]), eta)
      wake(q)
    else
      if kind == 'dead' then
        bury(id, q, f[7], redis.call('HGET', tk, 'raw'), fk, fm, fa)
      end
      remove(q, id, f[2], true)
      write_result(id, v, fk, fm, fa, rexp, px)
      for k = 0, nf - 1 do
        insert_at(first_follow + k * ENV_FIELDS)
      end
    end
    out[#out + 1] = 1
  end
end
finish()
return out
