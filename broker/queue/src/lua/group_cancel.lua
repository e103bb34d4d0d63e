-- Asks for a running group to be cancelled; the group controller cancels
-- its unfinished members and then ends the group. Asking twice changes
-- nothing more.
-- KEYS: 1 group HASH
-- ARGV: 1 reason, 2 now ms
-- Returns {'requested'} | {'already_finished', state} | {'not_found'}
local state = redis.call('HGET', KEYS[1], 'state')
if not state then return {'not_found'} end
if state ~= 'running' then return {'already_finished', state} end
if redis.call('HGET', KEYS[1], 'cancel') ~= '1' then
  redis.call('HSET', KEYS[1], 'cancel', 1, 'cancel_reason', ARGV[1], 'updated', ARGV[2])
end
return {'requested'}
