-- Queues one or more jobs of one tenant.
-- KEYS: 1 idempotency HASH, 2 seq counter, 3 all-jobs ZSET, 4 tenant-jobs ZSET,
--       5 tenant ready ZSET, 6 ready-tenants SET, 7 events STREAM
-- ARGV: 1 job key base, 2 state key base, 3 stream max len, 4 now ms (of the
--       call; each job carries its own submit time), 5 tenant,
--       then 6 per job: id, idempotency key ('' = none), priority, name,
--       spec JSON, submit time ms (a group commit gathers requests that
--       arrived at different times)
-- Returns one {created (1|0), job id, seq} per job; an idempotency key the
-- tenant used before (or earlier in the same call) returns {0, existing id, 0}
-- and writes nothing for that job.
local job_base, state_base, maxlen, now, tenant = ARGV[1], ARGV[2], ARGV[3], ARGV[4], ARGV[5]
local ctx = context(state_base, KEYS[7], maxlen, now)

-- Every idempotency key of the call in one HMGET.
local idem_keys = {}
for i = 7, #ARGV, 6 do
  if ARGV[i] ~= '' then idem_keys[#idem_keys + 1] = ARGV[i] end
end
local known = {}
if #idem_keys > 0 then
  local found = redis.call('HMGET', KEYS[1], unpack(idem_keys))
  for k, key in ipairs(idem_keys) do
    if found[k] then known[key] = found[k] end
  end
end

-- Which jobs are new, and their sequence numbers in one INCRBY.
local out, fresh = {}, {}
for i = 6, #ARGV, 6 do
  local id, idem = ARGV[i], ARGV[i + 1]
  local existing = idem ~= '' and known[idem]
  if existing then
    out[#out + 1] = {0, existing, 0}
  else
    if idem ~= '' then known[idem] = id end
    fresh[#fresh + 1] = i
    out[#out + 1] = false
  end
end
if #fresh == 0 then return out end
local seq = redis.call('INCRBY', KEYS[2], #fresh) - #fresh

local n = 0
for slot, value in ipairs(out) do
  if value == false then
    n = n + 1
    seq = seq + 1
    local seq_text = int(seq)
    local i = fresh[n]
    local id, idem, prio, name, spec = ARGV[i], ARGV[i + 1], ARGV[i + 2], ARGV[i + 3], ARGV[i + 4]
    local at = ARGV[i + 5]
    ctx.now = at
    local job = {tenant = tenant, seq = seq_text, attempt = '0', nhist = '0'}
    -- Fields at their initial value are left out (fence, attempt and cancel
    -- 0, no attempts): load() and codec.rs read them as such. Fewer fields,
    -- less to write.
    record(ctx, job_base .. id, id, job, nil, 'queued', 'submitted', {
      'tenant', tenant, 'state', 'queued', 'seq', seq_text, 'prio', prio, 'created', at,
      'name', name, 'spec', spec})
    if idem ~= '' then ctx.idx.add('HSET', KEYS[1], idem, id) end
    ctx.idx.add('ZADD', KEYS[3], seq_text, id)
    ctx.idx.add('ZADD', KEYS[4], seq_text, id)
    ctx.idx.add('ZADD', KEYS[5], ready_score(prio, seq_text), id)
    ctx.idx.add('ZADD', state_base .. 'queued', seq_text, id)
    out[slot] = {1, id, seq}
  end
end
ctx.idx.add('SADD', KEYS[6], tenant)
commit(ctx)
return out
