-- Blocks the BAPI budget for ARGV[1] ms (as Queue#rateLimit does: count = MAX_SAFE_INTEGER)
-- unless a longer block is already in place, so two clients seeing 429s never shorten each
-- other's. KEYS[1] limiter key. Returns 1 when it blocked, 0 when a longer block stands.
local ttl = redis.call('PTTL', KEYS[1])
local count = tonumber(redis.call('GET', KEYS[1]) or 0)
if count >= 9007199254740991 and ttl >= tonumber(ARGV[1]) then return 0 end
redis.call('SET', KEYS[1], '9007199254740991', 'PX', ARGV[1])
return 1
