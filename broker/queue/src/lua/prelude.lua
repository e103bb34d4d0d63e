-- Shared by every queue script (prepended at load time).
-- ALLOWED is rendered from raybroker_core::JobState::allowed_next, so the
-- scripts and the Rust state machine share one transition table.
local ALLOWED = {__ALLOWED__}

local function allowed(from, to)
  local nexts = ALLOWED[from]
  return nexts ~= nil and nexts[to] == true
end

-- An exact decimal for a ZSET score or a counter (tostring would round).
local function int(n)
  return string.format('%.0f', n)
end

-- Priority band then age: see keys::ready_score.
local function ready_score(prio, seq)
  return int((1000 - tonumber(prio)) * 1e12 + (tonumber(seq) % 1e12))
end

-- Appends one line to the job's history and publishes the same change on the
-- event stream. `from` may be nil (creation) or equal to `to` (a note such as
-- "cancel requested" or "attempt recorded").
local function record(jk, id, tenant, from, to, now, attempt, reason, events, maxlen)
  local entry = {to = to, at_ms = tonumber(now), attempt = tonumber(attempt), reason = reason}
  if from then entry.from = from end
  -- One field per change (h:1, h:2, ...): appending never rewrites the
  -- earlier history, in memory or in the AOF.
  local n = redis.call('HINCRBY', jk, 'nhist', 1)
  redis.call('HSET', jk, 'h:' .. n, cjson.encode(entry))
  redis.call('XADD', events, 'MAXLEN', '~', maxlen, '*',
    'job', id, 'tenant', tenant, 'from', from or '', 'to', to,
    'attempt', attempt, 'reason', reason, 'at', now)
end

-- Moves a job between states, keeping the per-state indexes in step, and
-- records the change. Callers have checked `allowed(from, to)`.
local function move(jk, id, from, to, now, reason, state_base, events, maxlen)
  local f = redis.call('HMGET', jk, 'tenant', 'seq', 'attempt')
  redis.call('HSET', jk, 'state', to, 'reason', reason, 'updated', now)
  redis.call('ZREM', state_base .. from, id)
  redis.call('ZADD', state_base .. to, f[2], id)
  record(jk, id, f[1], from, to, now, f[3], reason, events, maxlen)
end
