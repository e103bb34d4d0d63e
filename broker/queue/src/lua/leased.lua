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
local ctx = context(state_base, KEYS[2], maxlen, now)

local function one(id, fence)
  local jk = job_base .. id
  local job = load(jk)
  if not job then return {'not_found'} end
  if job.state ~= 'dispatching' or job.fence ~= fence then return {'stale'} end
  local attempt = tonumber(job.attempt)

  if op == 'renew' then
    redis.call('ZADD', KEYS[1], 'XX', arg, id)
    return {'ok', arg}
  elseif op == 'release' then
    ctx.idx.add('ZREM', KEYS[1], id)
    if job.cancel == '1' then
      ctx.idx.add('SREM', KEYS[3], id)
      move(ctx, jk, id, job, 'dispatching', 'cancelled', 'cancelled before dispatch')
      return {'ok', 'cancelled'}
    end
    ctx.idx.add('ZADD', ready_base .. job.tenant, ready_score(job.prio, job.seq), id)
    ctx.idx.add('SADD', KEYS[4], job.tenant)
    move(ctx, jk, id, job, 'dispatching', 'queued', reason)
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
    job.attempt = n
    record(ctx, jk, id, job, 'dispatching', 'dispatching', 'attempt ' .. n .. ' on cluster ' .. cluster,
      {'attempt', n, 'cluster', cluster, 'attempts', cjson.encode(attempts)})
    return {'ok', n}
  elseif op == 'submitted' then
    if attempt == 0 then return {'conflict', 'no attempt recorded before submit'} end
    local extra = {}
    local attempts = cjson.decode(redis.call('HGET', jk, 'attempts') or '[]')
    if #attempts > 0 then
      attempts[#attempts].submitted_at_ms = tonumber(now)
      extra = {'attempts', cjson.encode(attempts)}
    end
    ctx.idx.add('ZREM', KEYS[1], id)
    move(ctx, jk, id, job, 'dispatching', 'submitted', reason, extra)
    return {'ok', 'submitted'}
  elseif op == 'finish' then
    local to, class = string.match(arg, '^([%a_]+):?([%a_]*)$')
    if not to or not allowed('dispatching', to) or (to ~= 'failed' and to ~= 'cancelled') then
      return {'conflict', 'cannot finish a dispatching job as ' .. arg}
    end
    ctx.idx.add('ZREM', KEYS[1], id)
    if job.cancel == '1' then ctx.idx.add('SREM', KEYS[3], id) end
    local extra = {}
    if class ~= '' then extra = {'failure', class} end
    move(ctx, jk, id, job, 'dispatching', to, reason, extra)
    return {'ok', to}
  end
  return {'conflict', 'unknown op ' .. op}
end

local out = {}
for i = 9, #ARGV, 2 do
  out[#out + 1] = one(ARGV[i], ARGV[i + 1])
end
commit(ctx)
return out
