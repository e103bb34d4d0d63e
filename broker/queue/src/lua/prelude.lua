-- Shared by every queue script (prepended at load time).
-- ALLOWED is rendered from raybroker_core::JobState::allowed_next, so the
-- scripts and the Rust state machine share one transition table.
local ALLOWED = {__ALLOWED__}

local function allowed(from, to)
  local nexts = ALLOWED[from]
  return nexts ~= nil and nexts[to] == true
end

-- An exact decimal for a ZSET score or a counter (tostring would round).
-- Scripts pass integers as such strings: Redis would print a Lua number
-- with a (slow) floating-point format.
local function int(n)
  return string.format('%d', n)
end

-- Priority band then age: see keys::ready_score.
local function ready_score(prio, seq)
  return int((1000 - tonumber(prio)) * 1e12 + (tonumber(seq) % 1e12))
end

-- Cost model: on a busy queue most of a script's time is the per-call
-- overhead of redis.call, not the command itself. So each job gets as few
-- calls as its change needs (one HSET for every field and history line it
-- writes, one XADD), and index writes shared by a batch (state indexes,
-- leases, cancels) are collected and sent as one variadic command per key.

-- Index writes gathered over a script: add(cmd, key, ...) appends the
-- arguments to the one `cmd key ...` call flush() sends per (cmd, key), in
-- order of first use. Callers never touch the same member of the same key
-- twice in one script, so regrouping keeps the effect.
local function bulk()
  local order, lists = {}, {}
  local self = {}
  function self.add(cmd, key, a, b)
    local k = cmd .. ' ' .. key
    local list = lists[k]
    if not list then
      list = {}
      lists[k] = list
      order[#order + 1] = {cmd, key, list}
    end
    list[#list + 1] = a
    if b ~= nil then list[#list + 1] = b end
  end
  function self.flush()
    for _, entry in ipairs(order) do
      local cmd, key, list = entry[1], entry[2], entry[3]
      -- Chunks of an even size keep (score, member) pairs together and stay
      -- far below Lua's limit on unpack.
      for s = 1, #list, 1000 do
        redis.call(cmd, key, unpack(list, s, math.min(#list, s + 999)))
      end
    end
    order, lists = {}, {}
  end
  return self
end

-- What every state change of a script shares: where the indexes and the
-- event stream are, the time, the pending index writes, and the reasons
-- already JSON-encoded (a batch usually shares one).
local function context(state_base, events, maxlen, now)
  local json = {}
  return {
    state_base = state_base, events = events, maxlen = maxlen, now = now,
    idx = bulk(),
    reason_json = function(reason)
      local text = json[reason]
      if not text then
        text = cjson.encode(reason)
        json[reason] = text
      end
      return text
    end,
  }
end

-- The fields of a job every change reads, as one HMGET; nil if no such job.
local function load(jk)
  local f = redis.call('HMGET', jk, 'state', 'tenant', 'prio', 'seq', 'attempt', 'fence',
    'cancel', 'nhist')
  if not f[1] then return nil end
  return {state = f[1], tenant = f[2], prio = f[3], seq = f[4], attempt = f[5],
    fence = f[6], cancel = f[7], nhist = f[8]}
end

-- One history line, exactly as serde reads a Transition.
local function history_line(ctx, from, to, attempt, reason)
  local head = '{'
  if from then head = '{"from":"' .. from .. '",' end
  return head .. '"to":"' .. to .. '","at_ms":' .. ctx.now .. ',"attempt":' .. attempt
    .. ',"reason":' .. ctx.reason_json(reason) .. '}'
end

-- Records a change of `job` (a table from load): appends one line to its
-- history (one hash field per change, h:1, h:2, ...: appending never
-- rewrites the earlier history, in memory or in the AOF) in the same HSET as
-- `extra` (field, value, ...) and `updated`, and publishes the change on the
-- event stream. `from` may equal `to` (a note such as "cancel requested" or
-- "attempt recorded"). Every field written is appended to `extra` (callers
-- may return it).
local function record(ctx, jk, id, job, from, to, reason, extra)
  local n = int((tonumber(job.nhist) or 0) + 1)
  local args = extra or {}
  args[#args + 1] = 'updated'
  args[#args + 1] = ctx.now
  args[#args + 1] = 'nhist'
  args[#args + 1] = n
  args[#args + 1] = 'h:' .. n
  args[#args + 1] = history_line(ctx, from, to, job.attempt, reason)
  redis.call('HSET', jk, unpack(args))
  redis.call('XADD', ctx.events, 'MAXLEN', '~', ctx.maxlen, '*',
    'job', id, 'tenant', job.tenant, 'from', from or '', 'to', to,
    'attempt', job.attempt, 'reason', reason, 'at', ctx.now)
  job.nhist = n
end

-- Moves a job between states: the new state and reason go into the same
-- HSET as its history line, the per-state indexes follow at ctx.idx.flush().
-- Callers have checked `allowed(from, to)`.
local function move(ctx, jk, id, job, from, to, reason, extra)
  local args = extra or {}
  args[#args + 1] = 'state'
  args[#args + 1] = to
  args[#args + 1] = 'reason'
  args[#args + 1] = reason
  record(ctx, jk, id, job, from, to, reason, args)
  job.state = to
  ctx.idx.add('ZREM', ctx.state_base .. from, id)
  ctx.idx.add('ZADD', ctx.state_base .. to, job.seq, id)
end
