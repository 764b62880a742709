-- fetch.lua: leases up to `max` due tasks of one queue, highest priority first, FIFO within a
-- priority. First moves at most `promote` due scheduled tasks and expired leases to ready (never
-- all of them: the work of one call is bounded). Tasks past their delivery limit are
-- dead-lettered (with a kept failure result) instead of returned. A paused queue (P:{Q}:paused)
-- hands out nothing, and its expired leases and due scheduled tasks stay where they are:
-- checked in this call, so a pause applies to every fetch that starts after it.
-- KEYS[1]: a key of the queue (see common.lua)
-- ARGV[3]: queue   ARGV[4]: max   ARGV[5]: lease expiry ms   ARGV[6]: promote limit
-- ARGV[7 .. 6+max]: one fresh lease token per task that may be handed out
-- Returns: flat array, 5 entries per task: id, stored value (header and envelope, see
--   common.lua), token, deliveries, attempts (whether any revocation exists is asked in
--   the same round trip, outside this call: see hot.rs)
--
-- No call per task: ZRANGE + ZREMRANGEBYRANK of the ready index, one HMGET of the task hash
-- and one ZADD to leased per batch (plus one HMGET of each sparse hash that exists). Nothing
-- is written per task but the lease: the delivery count is written only when a delivery
-- ends without an outcome (see `dlv` in common.lua).
local q = ARGV[3]
local max = tonumber(ARGV[4])
local exp = ARGV[5]
local limit = tonumber(ARGV[6])
if paused(q) then return {} end
promote_scheduled(q, limit)
promote_expired(q, limit)
local k = Q(q)
local out, n = {}, 0
local leased, nl = {}, 0
local got = 0
local ti = 7
while got < max do
  -- Takes exactly as many as are still wanted; poison tasks make another round. Everything a
  -- round needs is read before it writes (a script error would keep earlier writes).
  local ids = redis.call('ZRANGE', k.ready, 0, max - got - 1)
  if #ids == 0 then break end
  local vals, dlvs, atts = hmget(k.task, ids), sparse(k.dlv, ids), sparse(k.att, ids)
  local poison = {}
  for j, id in ipairs(ids) do
    local v = vals[j]
    if v then
      -- Counts that are not numbers read as 0 (see `count`).
      local dlv = count(dlvs[j]) + 1
      local att = count(atts[j])
      -- Every limit is at least 1: a first delivery never needs the header read. A header
      -- that cannot be read hands the task out, and the client dead-letters it.
      local lim = dlv > 1 and task_lim(v) or math.huge
      if dlv > lim then
        poison[#poison + 1] = {id, v, dlv, lim, att}
      else
        local tok = ARGV[ti]
        ti = ti + 1
        got = got + 1
        out[n + 1], out[n + 2], out[n + 3], out[n + 4], out[n + 5] = id, v, tok, dlv, att
        n = n + 5
        leased[nl + 1], leased[nl + 2] = exp, lease_member(id, tok)
        nl = nl + 2
      end
    end
  end
  redis.call('ZREMRANGEBYRANK', k.ready, 0, #ids - 1)
  for _, p in ipairs(poison) do
    local id, v, dlv, lim, att = p[1], p[2], p[3], p[4], p[5]
    local t = parse_task(v) or {name = '?', raw = v}
    remove(q, id, false)
    local msg = 'delivered ' .. (dlv - 1) .. ' times without completing (limit ' .. lim ..
      '); treated as poison'
    bury(id, q, t.name, t.raw, 'delivery_limit', msg, att)
    write_result(q, id, '', 'delivery_limit', msg, att, dead_result_expiry())
  end
end
if nl > 0 then batched({'ZADD', k.leased}, leased) end
return out
