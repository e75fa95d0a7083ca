-- Raises an invitation's announced version, never lowers it; refreshes the TTL either way.
-- Given its organization, also notes the invitation among that organization's recent
-- announcements (scored by receipt, older ones trimmed), for the worker's batches.
-- KEYS[1] the invitation's announced key, KEYS[2] (optional) its organization's recent
-- announcements; ARGV[1] updated_at, ARGV[2] TTL (s), ARGV[3] received at (ms), ARGV[4] the
-- invitation's id, ARGV[5] the recent window (ms).
local current = tonumber(redis.call('GET', KEYS[1]) or '-1')
if tonumber(ARGV[1]) > current then
  redis.call('SET', KEYS[1], ARGV[1], 'EX', ARGV[2])
else
  redis.call('EXPIRE', KEYS[1], ARGV[2])
end
if KEYS[2] then
  local at = tonumber(ARGV[3])
  redis.call('ZADD', KEYS[2], at, ARGV[4])
  redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', at - tonumber(ARGV[5]))
  redis.call('PEXPIRE', KEYS[2], ARGV[5])
end
return 1
