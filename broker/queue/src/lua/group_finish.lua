-- Ends a running group: records its final state and reason and takes it
-- off the controller's active set. A group that already ended keeps its
-- first final state.
-- KEYS: 1 group HASH, 2 active groups SET
-- ARGV: 1 group id, 2 final state ('succeeded'|'failed'|'cancelled'),
--       3 reason, 4 now ms
-- Returns {'ok'} | {'not_found'} | {'already', state}
local id, to, reason, now = ARGV[1], ARGV[2], ARGV[3], ARGV[4]
if to ~= 'succeeded' and to ~= 'failed' and to ~= 'cancelled' then
  return redis.error_reply('group_finish: not a final state: ' .. to)
end
local state = redis.call('HGET', KEYS[1], 'state')
if not state then
  redis.call('SREM', KEYS[2], id)
  return {'not_found'}
end
if state ~= 'running' then
  redis.call('SREM', KEYS[2], id)
  return {'already', state}
end
redis.call('HSET', KEYS[1], 'state', to, 'reason', reason, 'updated', now, 'finished', now)
redis.call('SREM', KEYS[2], id)
return {'ok'}
