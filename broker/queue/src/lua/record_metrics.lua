-- Keeps metric points a job reported: appends each to its metric's series
-- (newest `cap` kept) and updates the metric's last, min and max in one step.
-- A job keeps at most `maxnames` distinct metrics; points of further names
-- are counted in `mdropped` and not kept.
-- KEYS: 1 telemetry HASH, 2 job HASH
-- ARGV: 1 series key base (a metric's LIST is base .. name), 2 cap per
--       series, 3 most metric names, then per point 4 values: name, value
--       (exact decimal), point JSON, at_ms
-- Returns the number of points kept, or -1 when the job does not exist.
local base, cap, maxnames = ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3])
if redis.call('EXISTS', KEYS[2]) == 0 then return -1 end
local kept = 0
for i = 4, #ARGV - 3, 4 do
  local name, value, json, at = ARGV[i], tonumber(ARGV[i + 1]), ARGV[i + 2], tonumber(ARGV[i + 3])
  local f = redis.call('HMGET', KEYS[1], 'lastat:' .. name, 'minv:' .. name, 'maxv:' .. name, 'nnames')
  local admitted = true
  if not f[1] then
    if tonumber(f[4] or '0') >= maxnames then
      redis.call('HINCRBY', KEYS[1], 'mdropped', 1)
      admitted = false
    else
      redis.call('HINCRBY', KEYS[1], 'nnames', 1)
    end
  end
  if admitted then
    local series = base .. name
    redis.call('RPUSH', series, json)
    redis.call('LTRIM', series, -cap, -1)
    if not f[1] or at >= tonumber(f[1]) then
      redis.call('HSET', KEYS[1], 'last:' .. name, json, 'lastat:' .. name, ARGV[i + 3])
    end
    if not f[2] or value < tonumber(f[2]) then
      redis.call('HSET', KEYS[1], 'min:' .. name, json, 'minv:' .. name, ARGV[i + 1])
    end
    if not f[3] or value > tonumber(f[3]) then
      redis.call('HSET', KEYS[1], 'max:' .. name, json, 'maxv:' .. name, ARGV[i + 1])
    end
    kept = kept + 1
  end
end
return kept
