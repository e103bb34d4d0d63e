-- Keeps spans of one job in a bounded LIST: appends each span, then drops the
-- oldest until the list holds at most `maxcount` spans and `maxbytes` bytes.
-- A span bigger than `maxbytes` on its own is not kept. Dropped spans are
-- counted in the telemetry hash field `<kind>dropped`; the bytes held in
-- `<kind>bytes`.
-- KEYS: 1 span LIST, 2 telemetry HASH, 3 job HASH
-- ARGV: 1 most spans, 2 most bytes, 3 kind ("job" or "broker"), 4.. span JSON
-- Returns the number of spans appended, or -1 when the job does not exist.
local maxcount, maxbytes, kind = tonumber(ARGV[1]), tonumber(ARGV[2]), ARGV[3]
if redis.call('EXISTS', KEYS[3]) == 0 then return -1 end
local bytesfield, droppedfield = kind .. 'bytes', kind .. 'dropped'
local bytes = tonumber(redis.call('HGET', KEYS[2], bytesfield) or '0')
local appended, dropped = 0, 0
for i = 4, #ARGV do
  local span = ARGV[i]
  if #span > maxbytes then
    dropped = dropped + 1
  else
    redis.call('RPUSH', KEYS[1], span)
    bytes = bytes + #span
    appended = appended + 1
  end
end
local len = redis.call('LLEN', KEYS[1])
while len > 0 and (len > maxcount or bytes > maxbytes) do
  local oldest = redis.call('LPOP', KEYS[1])
  bytes = bytes - #oldest
  len = len - 1
  dropped = dropped + 1
end
redis.call('HSET', KEYS[2], bytesfield, bytes)
if dropped > 0 then redis.call('HINCRBY', KEYS[2], droppedfield, dropped) end
return appended
