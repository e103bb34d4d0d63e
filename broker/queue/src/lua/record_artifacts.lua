-- Keeps the artifact URIs a job reported, each once, in report order; at most
-- `max` of them (further ones are counted in `adropped`).
-- KEYS: 1 artifact LIST, 2 telemetry HASH, 3 job HASH
-- ARGV: 1 most artifacts, 2.. URIs
-- Returns the number of new URIs kept, or -1 when the job does not exist.
local max = tonumber(ARGV[1])
if redis.call('EXISTS', KEYS[3]) == 0 then return -1 end
local kept = 0
for i = 2, #ARGV do
  local field = 'a:' .. ARGV[i]
  if redis.call('HEXISTS', KEYS[2], field) == 0 then
    if redis.call('LLEN', KEYS[1]) >= max then
      redis.call('HINCRBY', KEYS[2], 'adropped', 1)
    else
      redis.call('HSET', KEYS[2], field, 1)
      redis.call('RPUSH', KEYS[1], ARGV[i])
      kept = kept + 1
    end
  end
end
return kept
