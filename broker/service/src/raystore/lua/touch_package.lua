-- Looks up a tenant's package name and, while its blob exists, refreshes the
-- TTLs of both (a check, a submit or a dispatch keeps a package alive).
-- KEYS: 1 package-name STRING
-- ARGV: 1 blob key base (the blob key is base .. digest), 2 TTL in seconds
-- Returns the digest, or false when the name or its blob is gone (a name
-- whose blob expired is removed).
local digest = redis.call('GET', KEYS[1])
if not digest then
  return false
end
local blob = ARGV[1] .. digest
if redis.call('EXPIRE', blob, ARGV[2]) == 0 then
  redis.call('DEL', KEYS[1])
  return false
end
redis.call('EXPIRE', KEYS[1], ARGV[2])
return digest
