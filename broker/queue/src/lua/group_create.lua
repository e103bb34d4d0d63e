-- Creates a job group (or sweep) record and makes it active for the
-- group controller. Creating an id that exists changes nothing.
-- KEYS: 1 group HASH, 2 tenant's groups ZSET, 3 active groups SET
-- ARGV: 1 group id, 2 tenant, 3 kind ('group'|'sweep'), 4 name, 5 spec JSON,
--       6 member count (0 for a sweep: its trials are generated), 7 now ms
-- Returns {'ok'} | {'exists'}
local id, tenant, kind, name, spec, count, now =
  ARGV[1], ARGV[2], ARGV[3], ARGV[4], ARGV[5], ARGV[6], ARGV[7]
if kind ~= 'group' and kind ~= 'sweep' then
  return redis.error_reply('group_create: unknown kind ' .. kind)
end
if redis.call('EXISTS', KEYS[1]) == 1 then return {'exists'} end
redis.call('HSET', KEYS[1], 'tenant', tenant, 'kind', kind, 'name', name, 'spec', spec,
  'count', count, 'state', 'running', 'reason', 'created', 'cancel', 0,
  'created', now, 'updated', now)
redis.call('ZADD', KEYS[2], now, id)
redis.call('SADD', KEYS[3], id)
return {'ok'}
