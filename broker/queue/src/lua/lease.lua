-- Leases up to N of a tenant's queued jobs, best first: queued -> dispatching,
-- with a new fencing token each.
-- KEYS: 1 tenant ready ZSET, 2 leases ZSET, 3 ready-tenants SET, 4 events STREAM
-- ARGV: 1 job key base, 2 state key base, 3 stream max len, 4 now ms,
--       5 lease expiry ms, 6 max jobs, 7 tenant, then optionally the ids to
--       lease (placement chose them); ids no longer queued are skipped
-- Returns one {id, fence, HGETALL of the job} per leased job.
local job_base, state_base, maxlen, now = ARGV[1], ARGV[2], ARGV[3], ARGV[4]
local expires, max, tenant = ARGV[5], tonumber(ARGV[6]), ARGV[7]
local out = {}
local ids
if #ARGV > 7 then
  ids = {}
  for i = 8, math.min(#ARGV, 7 + max) do
    if redis.call('ZSCORE', KEYS[1], ARGV[i]) then ids[#ids + 1] = ARGV[i] end
  end
else
  ids = redis.call('ZRANGE', KEYS[1], 0, max - 1)
end
for _, id in ipairs(ids) do
  local jk = job_base .. id
  redis.call('ZREM', KEYS[1], id)
  -- A member whose job is no longer queued is a leftover: drop it.
  if redis.call('HGET', jk, 'state') == 'queued' then
    local fence = redis.call('HINCRBY', jk, 'fence', 1)
    redis.call('ZADD', KEYS[2], expires, id)
    move(jk, id, 'queued', 'dispatching', now, 'leased for dispatch', state_base, KEYS[4], maxlen)
    out[#out + 1] = {id, fence, redis.call('HGETALL', jk)}
  end
end
if redis.call('ZCARD', KEYS[1]) == 0 then redis.call('SREM', KEYS[3], tenant) end
return out
