-- Reconcile: moves the current attempt of a job that is on a cluster.
-- Refused unless ARGV attempt is still the job's current attempt, so the
-- results of a superseded attempt never change the job.
-- KEYS: 1 cancels SET, 2 events STREAM, 3 ready-tenants SET
-- ARGV: 1 job key base, 2 state key base, 3 stream max len, 4 now ms,
--       5 ready key base, 6 job id, 7 attempt, 8 target state, 9 reason,
--       10 exit code ('' when unknown), 11 failure class ('' for none),
--       12 not-before ms of the retry ('' for none), 13 clusters the retry
--       avoids, space-separated ('' for none)
-- Target 'queued' is a retry: the job goes back to its tenant's queue at its
-- original age, unless a cancel is pending, which wins.
-- Returns {'ok', state after} | {'not_found'} | {'conflict', why}
local job_base, state_base, maxlen, now = ARGV[1], ARGV[2], ARGV[3], ARGV[4]
local ready_base, id, attempt, to, reason, exit = ARGV[5], ARGV[6], ARGV[7], ARGV[8], ARGV[9], ARGV[10]
local failure, not_before, exclude = ARGV[11], ARGV[12], ARGV[13]
local ctx = context(state_base, KEYS[2], maxlen, now)
local jk = job_base .. id
local job = load(jk)
if not job then return {'not_found'} end
local state = job.state
if job.attempt ~= attempt then
  return {'conflict', 'attempt ' .. attempt .. ' is superseded by attempt ' .. job.attempt}
end
if state ~= 'submitted' and state ~= 'running' then
  return {'conflict', 'a ' .. state .. ' job is not on a cluster'}
end
if state == to then return {'ok', state} end
if to == 'queued' and job.cancel == '1' then
  to, reason = 'cancelled', 'cancelled instead of retried: ' .. reason
  failure = 'cancelled'
end
if not allowed(state, to) then
  return {'conflict', 'a ' .. state .. ' job cannot become ' .. to}
end
local extra = {}
if exit ~= '' then extra[#extra + 1] = 'exit'; extra[#extra + 1] = exit end
-- The class of the attempt's failure; a success clears an earlier one.
if failure ~= '' then
  extra[#extra + 1] = 'failure'; extra[#extra + 1] = failure
elseif to == 'succeeded' then
  redis.call('HDEL', jk, 'failure')
end
if to == 'queued' then
  if not_before ~= '' then extra[#extra + 1] = 'notbefore'; extra[#extra + 1] = not_before end
  if exclude ~= '' then extra[#extra + 1] = 'exclude'; extra[#extra + 1] = exclude end
  redis.call('ZADD', ready_base .. job.tenant, ready_score(job.prio, job.seq), id)
  redis.call('SADD', KEYS[3], job.tenant)
elseif to == 'succeeded' or to == 'failed' or to == 'cancelled' then
  redis.call('SREM', KEYS[1], id)
end
move(ctx, jk, id, job, state, to, reason, extra)
commit(ctx)
return {'ok', to}
