-- Cancels a job: a queued one at once; one that is dispatching or on a
-- cluster is marked, and the loops carry the cancel to the cluster; a
-- finished one is left as it is. Asking twice changes nothing more.
-- KEYS: 1 cancels SET, 2 events STREAM, 3 ready-tenants SET
-- ARGV: 1 job key base, 2 state key base, 3 stream max len, 4 now ms,
--       5 ready key base, 6 job id, 7 reason
-- Returns {'cancelled'} | {'requested'} | {'already_finished'} | {'not_found'}
local job_base, state_base, maxlen, now = ARGV[1], ARGV[2], ARGV[3], ARGV[4]
local ready_base, id, reason = ARGV[5], ARGV[6], ARGV[7]
local jk = job_base .. id
local f = redis.call('HMGET', jk, 'state', 'tenant', 'cancel', 'attempt')
local state = f[1]
if not state then return {'not_found'} end
if state == 'succeeded' or state == 'failed' or state == 'cancelled' then
  return {'already_finished'}
end
if state == 'queued' then
  redis.call('ZREM', ready_base .. f[2], id)
  if redis.call('ZCARD', ready_base .. f[2]) == 0 then redis.call('SREM', KEYS[3], f[2]) end
  move(jk, id, 'queued', 'cancelled', now, reason, state_base, KEYS[2], maxlen)
  return {'cancelled'}
end
if f[3] ~= '1' then
  redis.call('HSET', jk, 'cancel', 1, 'updated', now)
  redis.call('SADD', KEYS[1], id)
  record(jk, id, f[2], state, state, now, f[4], 'cancel requested: ' .. reason, KEYS[2], maxlen)
end
return {'requested'}
