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
-- overhead of redis.call and the per-argument cost of propagating each write
-- to the AOF, not the command itself. So each job gets as few calls as its
-- change needs (one HSET for every field and history line it writes); index
-- writes shared by a batch (state indexes, leases, cancels) are collected and
-- sent as one variadic command per key; and a script's events go out as one
-- stream entry (see commit).

-- Index writes gathered over a script: add(cmd, key, ...) appends the
-- arguments to the one `cmd key ...` call flush() sends per (cmd, key), in
-- order of first use. Callers never touch the same member of the same key
-- twice in one script, so regrouping keeps the effect.
local function bulk()
  local order, lists = {}, {}
  local self = {}
  function self.add(cmd, key, a, b)
    local by_key = lists[cmd]
    if not by_key then
      by_key = {}
      lists[cmd] = by_key
    end
    local list = by_key[key]
    if not list then
      list = {}
      by_key[key] = list
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
-- event stream are, the time, the pending index writes and events, and the
-- reasons already JSON-encoded (a batch usually shares one).
local function context(state_base, events, maxlen, now)
  local json = {}
  return {
    state_base = state_base, events = events, maxlen = maxlen, now = now,
    idx = bulk(), ev = {},
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

-- Most events in one stream entry: (job id, event) pairs stay far below
-- Lua's limit on unpack.
local EVENTS_PER_ENTRY = 1000

-- Sends what a script gathered: its index writes, then its events as one
-- stream entry (a longer batch as several), each event one field: the job id
-- names it, the value is "tenant from to attempt at_ms reason" (from '-' when
-- there is none; the reason, last, may hold spaces). queue/events.rs reads
-- this format. Every script that records a change ends with commit(ctx).
local function commit(ctx)
  ctx.idx.flush()
  local ev = ctx.ev
  for s = 1, #ev, 2 * EVENTS_PER_ENTRY do
    redis.call('XADD', ctx.events, 'MAXLEN', '~', ctx.maxlen, '*',
      unpack(ev, s, math.min(#ev, s + 2 * EVENTS_PER_ENTRY - 1)))
  end
  ctx.ev = {}
end

-- The fields of a job every change reads, as one HMGET; nil if no such job.
-- A fresh job's hash leaves out what is still at its initial value (see
-- submit.lua): read as such here.
local function load(jk)
  local f = redis.call('HMGET', jk, 'state', 'tenant', 'prio', 'seq', 'attempt', 'fence',
    'cancel', 'nhist')
  if not f[1] then return nil end
  return {state = f[1], tenant = f[2], prio = f[3], seq = f[4], attempt = f[5] or '0',
    fence = f[6] or '0', cancel = f[7] or '0', nhist = f[8]}
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
-- `extra` (field, value, ...), and queues the change for the event stream
-- (sent at commit). `from` may equal `to` (a note such as "cancel requested"
-- or "attempt recorded"). The job's last change time and its reason are not
-- stored apart: codec.rs reads them from the history lines.
local function record(ctx, jk, id, job, from, to, reason, extra)
  local n = int((tonumber(job.nhist) or 0) + 1)
  local args = extra or {}
  args[#args + 1] = 'nhist'
  args[#args + 1] = n
  args[#args + 1] = 'h:' .. n
  args[#args + 1] = history_line(ctx, from, to, job.attempt, reason)
  redis.call('HSET', jk, unpack(args))
  local ev = ctx.ev
  ev[#ev + 1] = id
  ev[#ev + 1] = job.tenant .. ' ' .. (from or '-') .. ' ' .. to .. ' ' .. job.attempt .. ' '
    .. ctx.now .. ' ' .. reason
  job.nhist = n
end

-- Moves a job between states: the new state goes into the same HSET as its
-- history line, the per-state indexes follow at commit(ctx). Dispatching
-- jobs have no per-state index: they are exactly the lease index's members
-- (every job passes through within one dispatch round, so an index of its
-- own would cost two writes a job for nothing; reads.rs uses the leases).
-- Callers have checked `allowed(from, to)`.
local function move(ctx, jk, id, job, from, to, reason, extra)
  local args = extra or {}
  args[#args + 1] = 'state'
  args[#args + 1] = to
  record(ctx, jk, id, job, from, to, reason, args)
  job.state = to
  if from ~= 'dispatching' then ctx.idx.add('ZREM', ctx.state_base .. from, id) end
  if to ~= 'dispatching' then ctx.idx.add('ZADD', ctx.state_base .. to, job.seq, id) end
end
