-- Leases up to N of a tenant's queued jobs, best first: queued -> dispatching,
-- with a new fencing token each.
-- KEYS: 1 tenant ready ZSET, 2 leases ZSET, 3 ready-tenants SET, 4 events STREAM
-- ARGV: 1 job key base, 2 state key base, 3 stream max len, 4 now ms,
--       5 lease expiry ms, 6 max jobs, 7 tenant, then optionally the ids to
--       lease (placement chose them); ids no longer queued are skipped
-- Returns one {id, fence} per leased job, best first. The caller reads the
-- jobs it needs outside the script: a job's whole hash through Lua costs Redis
-- twice (into Lua values, then back out as the reply).
local job_base, state_base, maxlen, now = ARGV[1], ARGV[2], ARGV[3], ARGV[4]
local expires, max, tenant = ARGV[5], tonumber(ARGV[6]), ARGV[7]
local ctx = context(state_base, KEYS[4], maxlen, now)
local out = {}
local ids
if #ARGV > 7 then
  local asked = {}
  for i = 8, math.min(#ARGV, 7 + max) do asked[#asked + 1] = ARGV[i] end
  ids = {}
  local scores = redis.call('ZMSCORE', KEYS[1], unpack(asked))
  for k, id in ipairs(asked) do
    if scores[k] then ids[#ids + 1] = id end
  end
else
  ids = redis.call('ZRANGE', KEYS[1], 0, max - 1)
end
for s = 1, #ids, 1000 do
  redis.call('ZREM', KEYS[1], unpack(ids, s, math.min(#ids, s + 999)))
end
local reason = 'leased for dispatch'
for _, id in ipairs(ids) do
  local jk = job_base .. id
  local job = load(jk)
  -- A member whose job is no longer queued is a leftover: dropped above.
  if job and job.state == 'queued' then
    local fence = (tonumber(job.fence) or 0) + 1
    move(ctx, jk, id, job, 'queued', 'dispatching', reason, {'fence', int(fence)})
    ctx.idx.add('ZADD', KEYS[2], expires, id)
    out[#out + 1] = {id, fence}
  end
end
commit(ctx)
if redis.call('ZCARD', KEYS[1]) == 0 then redis.call('SREM', KEYS[3], tenant) end
return out
