-- Changes made by the holder of a lease. Every change first checks that the
-- job is still dispatching under the caller's fencing token, so a holder whose
-- lease expired (and was reclaimed) can no longer change the job.
-- KEYS: 1 leases ZSET, 2 events STREAM, 3 cancels SET, 4 ready-tenants SET
-- ARGV: 1 job key base, 2 state key base, 3 stream max len, 4 now ms,
--       5 ready key base, 6 op, 7 op argument, 8 reason,
--       then pairs of (job id, fence)
-- ops and their argument:
--   renew     new expiry ms        extend the lease
--   release   -                    back to queued (cancelled if a cancel is pending)
--   attempt   "N cluster sid"      record attempt N (must be current + 1) on cluster
--   submitted -                    the cluster accepted the attempt: -> submitted
--   finish    "state[:class]"      -> failed | cancelled without a cluster,
--                                  recording the failure class when given
-- Returns one reply per job: {'ok', detail} | {'stale'} | {'not_found'} | {'conflict', why}
local job_base, state_base, maxlen, now = ARGV[1], ARGV[2], ARGV[3], ARGV[4]
local ready_base, op, arg, reason = ARGV[5], ARGV[6], ARGV[7], ARGV[8]

local function one(id, fence)
  local jk = job_base .. id
  local f = redis.call('HMGET', jk, 'state', 'fence', 'tenant', 'prio', 'seq', 'attempt', 'cancel')
  if not f[1] then return {'not_found'} end
  if f[1] ~= 'dispatching' or f[2] ~= fence then return {'stale'} end
  local tenant, prio, seq, attempt, cancel = f[3], f[4], f[5], tonumber(f[6]), f[7]

  if op == 'renew' then
    redis.call('ZADD', KEYS[1], 'XX', arg, id)
    return {'ok', arg}
  elseif op == 'release' then
    redis.call('ZREM', KEYS[1], id)
    if cancel == '1' then
      redis.call('SREM', KEYS[3], id)
      move(jk, id, 'dispatching', 'cancelled', now, 'cancelled before dispatch', state_base, KEYS[2], maxlen)
      return {'ok', 'cancelled'}
    end
    redis.call('ZADD', ready_base .. tenant, ready_score(prio, seq), id)
    redis.call('SADD', KEYS[4], tenant)
    move(jk, id, 'dispatching', 'queued', now, reason, state_base, KEYS[2], maxlen)
    return {'ok', 'queued'}
  elseif op == 'attempt' then
    local n, cluster, sid = string.match(arg, '^(%d+) (%S+) (%S+)$')
    if not n then return {'conflict', 'malformed attempt argument'} end
    if tonumber(n) ~= attempt + 1 then
      return {'conflict', 'attempt ' .. n .. ' is not next after ' .. attempt}
    end
    local attempts = cjson.decode(redis.call('HGET', jk, 'attempts') or '[]')
    attempts[#attempts + 1] = {number = tonumber(n), cluster = cluster, submission_id = sid,
      created_at_ms = tonumber(now)}
    redis.call('HSET', jk, 'attempt', n, 'cluster', cluster, 'attempts', cjson.encode(attempts),
      'updated', now)
    record(jk, id, tenant, 'dispatching', 'dispatching', now, n,
      'attempt ' .. n .. ' on cluster ' .. cluster, KEYS[2], maxlen)
    return {'ok', n}
  elseif op == 'submitted' then
    if attempt == 0 then return {'conflict', 'no attempt recorded before submit'} end
    local attempts = cjson.decode(redis.call('HGET', jk, 'attempts') or '[]')
    if #attempts > 0 then
      attempts[#attempts].submitted_at_ms = tonumber(now)
      redis.call('HSET', jk, 'attempts', cjson.encode(attempts))
    end
    redis.call('ZREM', KEYS[1], id)
    move(jk, id, 'dispatching', 'submitted', now, reason, state_base, KEYS[2], maxlen)
    return {'ok', 'submitted'}
  elseif op == 'finish' then
    local to, class = string.match(arg, '^([%a_]+):?([%a_]*)$')
    if not to or not allowed('dispatching', to) or (to ~= 'failed' and to ~= 'cancelled') then
      return {'conflict', 'cannot finish a dispatching job as ' .. arg}
    end
    redis.call('ZREM', KEYS[1], id)
    redis.call('SREM', KEYS[3], id)
    if class ~= '' then redis.call('HSET', jk, 'failure', class) end
    move(jk, id, 'dispatching', to, now, reason, state_base, KEYS[2], maxlen)
    return {'ok', to}
  end
  return {'conflict', 'unknown op ' .. op}
end

local out = {}
for i = 9, #ARGV, 2 do
  out[#out + 1] = one(ARGV[i], ARGV[i + 1])
end
return out
