-- Keeps a job's log in the broker: appends a chunk fetched from the cluster
-- and moves the attempt's log cursor in the same step, so a crash between the
-- two can neither lose nor repeat text. The log keeps its newest `cap` bytes.
-- KEYS: 1 log STRING, 2 job HASH
-- ARGV: 1 attempt, 2 cursor the chunk was read from, 3 cursor after it,
--       4 text, 5 cap in bytes
-- Returns 1 when appended, 0 when the cursor moved meanwhile (a duplicate
-- fetch) or the attempt is not current.
local attempt, from, to, text, cap = ARGV[1], ARGV[2], ARGV[3], ARGV[4], tonumber(ARGV[5])
local f = redis.call('HMGET', KEYS[2], 'attempt', 'logcur')
if not f[1] or f[1] ~= attempt then return 0 end
local current = f[2]
if not current or string.sub(current, 1, #attempt + 1) ~= attempt .. ':' then
  current = attempt .. ':0'
end
if current ~= attempt .. ':' .. from then return 0 end
if text ~= '' then
  local len = redis.call('APPEND', KEYS[1], text)
  if len > cap then
    local tail = redis.call('GETRANGE', KEYS[1], len - cap, -1)
    redis.call('SET', KEYS[1], tail)
  end
end
redis.call('HSET', KEYS[2], 'logcur', attempt .. ':' .. to)
return 1
