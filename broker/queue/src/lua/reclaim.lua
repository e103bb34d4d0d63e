-- Returns jobs whose lease expired to their tenant's queue (or cancels them if
-- a cancel is pending) and bumps their fence, so the lost holder's later
-- changes are refused.
-- KEYS: 1 leases ZSET, 2 events STREAM, 3 cancels SET, 4 ready-tenants SET
-- ARGV: 1 job key base, 2 state key base, 3 stream max len, 4 now ms,
--       5 ready key base, 6 max jobs
-- Returns the ids reclaimed.
local job_base, state_base, maxlen, now = ARGV[1], ARGV[2], ARGV[3], ARGV[4]
local ready_base, limit = ARGV[5], ARGV[6]
local ctx = context(state_base, KEYS[2], maxlen, now)
local out = {}
local ids = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now, 'LIMIT', 0, limit)
for _, id in ipairs(ids) do
  redis.call('ZREM', KEYS[1], id)
  local jk = job_base .. id
  local job = load(jk)
  if job and job.state == 'dispatching' then
    local fence = {'fence', int((tonumber(job.fence) or 0) + 1)}
    if job.cancel == '1' then
      redis.call('SREM', KEYS[3], id)
      move(ctx, jk, id, job, 'dispatching', 'cancelled', 'cancelled after the dispatcher lost its lease', fence)
    else
      redis.call('ZADD', ready_base .. job.tenant, ready_score(job.prio, job.seq), id)
      redis.call('SADD', KEYS[4], job.tenant)
      move(ctx, jk, id, job, 'dispatching', 'queued', 'lease expired: the dispatcher stopped or stalled', fence)
    end
    out[#out + 1] = id
  end
end
commit(ctx)
return out
