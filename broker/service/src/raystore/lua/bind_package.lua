-- Points a tenant's package name at an uploaded blob and refreshes both TTLs.
-- KEYS: 1 package-name STRING, 2 blob STRING
-- ARGV: 1 digest (hex SHA-256 of the blob), 2 TTL in seconds
-- Returns 1, or 0 (and writes nothing) when the blob is gone.
if redis.call('EXISTS', KEYS[2]) == 0 then
  return 0
end
redis.call('SET', KEYS[1], ARGV[1], 'EX', ARGV[2])
redis.call('EXPIRE', KEYS[2], ARGV[2])
return 1
