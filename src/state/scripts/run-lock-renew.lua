-- Extends a maintenance run's lock while its holder lives. KEYS[1] the lock; ARGV[1] the
-- holder's token, ARGV[2] TTL (ms). Returns 1 when the token still held it.
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('PEXPIRE', KEYS[1], ARGV[2]) end
return 0
