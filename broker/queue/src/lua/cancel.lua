-- Cancels a job: a queued one at once; one that is dispatching or on a
-- cluster is marked, and the loops carry the cancel to the cluster; a
-- finished one is left as it is. Asking twice changes nothing more.
-- KEYS: 1 cancels SET, 2 events STREAM, 3 ready-tenants SET
-- ARGV: 1 job key base, 2 state key base, 3 stream max len, 4 now ms,
--       5 ready key base, 6 job id, 7 reason
-- Returns {'cancelled'} | {'requested'} | {'already_finished'} | {'not_found'}
local job_base, state_base, maxlen, now = ARGV[1], ARGV[2], ARGV[3], ARGV[4]
local ready_base, id, reason = ARGV[5], ARGV[6], ARGV[7]
local ctx = context(state_base, KEYS[2], maxlen, now)
local jk = job_base .. id
local job = load(jk)
if not job then return {'not_found'} end
local state = job.state
if state == 'succeeded' or state == 'failed' or state == 'cancelled' then
  return {'already_finished'}
end
if state == 'queued' then
  redis.call('ZREM', ready_base .. job.tenant, id)
  if redis.call('ZCARD', ready_base .. job.tenant) == 0 then redis.call('SREM', KEYS[3], job.tenant) end
  move(ctx, jk, id, job, 'queued', 'cancelled', reason)
  commit(ctx)
  return {'cancelled'}
end
if job.cancel ~= '1' then
  redis.call('SADD', KEYS[1], id)
  record(ctx, jk, id, job, state, state, 'cancel requested: ' .. reason, {'cancel', '1'})
  commit(ctx)
end
return {'requested'}
