-- Queues one or more jobs of one tenant.
-- KEYS: 1 idempotency HASH, 2 seq counter, 3 all-jobs ZSET, 4 tenant-jobs ZSET,
--       5 tenant ready ZSET, 6 ready-tenants SET, 7 events STREAM
-- ARGV: 1 job key base, 2 state key base, 3 stream max len, 4 now ms, 5 tenant,
--       then 5 per job: id, idempotency key ('' = none), priority, name, spec JSON
-- Returns one {created (1|0), job id, seq} per job; an existing idempotency
-- key returns {0, existing id, 0} and writes nothing for that job.
local job_base, state_base, maxlen, now, tenant = ARGV[1], ARGV[2], ARGV[3], ARGV[4], ARGV[5]
local out = {}
for i = 6, #ARGV, 5 do
  local id, idem, prio, name, spec = ARGV[i], ARGV[i + 1], ARGV[i + 2], ARGV[i + 3], ARGV[i + 4]
  local existing = false
  if idem ~= '' then existing = redis.call('HGET', KEYS[1], idem) end
  if existing then
    out[#out + 1] = {0, existing, 0}
  else
    local seq = redis.call('INCR', KEYS[2])
    local jk = job_base .. id
    redis.call('HSET', jk, 'tenant', tenant, 'state', 'queued', 'seq', seq, 'prio', prio,
      'fence', 0, 'attempt', 0, 'cancel', 0, 'reason', 'submitted',
      'created', now, 'updated', now, 'name', name, 'spec', spec, 'attempts', '[]')
    if idem ~= '' then redis.call('HSET', KEYS[1], idem, id) end
    redis.call('ZADD', KEYS[3], seq, id)
    redis.call('ZADD', KEYS[4], seq, id)
    redis.call('ZADD', KEYS[5], ready_score(prio, seq), id)
    redis.call('ZADD', state_base .. 'queued', seq, id)
    redis.call('SADD', KEYS[6], tenant)
    record(jk, id, tenant, nil, 'queued', now, 0, 'submitted', KEYS[7], maxlen)
    out[#out + 1] = {1, id, seq}
  end
end
return out
