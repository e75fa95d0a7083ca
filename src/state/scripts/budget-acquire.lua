-- Takes one request from the BAPI budget the sync worker's BullMQ limiter spends, or says how
-- long until one is free. Same fixed-window scheme as BullMQ's `prepareJobForProcessing` and
-- `getRateLimitTTL` scripts, on the same key: INCR per request, PEXPIRE the window on the
-- first, refuse while the count is at `max` and the key lives. `max`/`duration` in the
-- queue's meta hash (Queue#setGlobalRateLimit) win over ours, as they do for the worker.
-- A key left without a TTL (never by BullMQ, but by a manual SET) gets one so it cannot
-- block forever.
-- KEYS[1] limiter key, KEYS[2] meta key; ARGV[1] max, ARGV[2] window ms.
-- Returns 0 when granted, else the ms to wait.
local meta = redis.call('HMGET', KEYS[2], 'max', 'duration')
local max = tonumber(meta[1] or ARGV[1])
local duration = math.floor(math.abs(tonumber(meta[2] or ARGV[2])))
local count = tonumber(redis.call('GET', KEYS[1]) or 0)
if count >= max then
  local ttl = redis.call('PTTL', KEYS[1])
  if ttl > 0 then return ttl end
  if ttl == -1 then
    redis.call('PEXPIRE', KEYS[1], duration)
    return duration
  end
  count = 0
end
if redis.call('INCR', KEYS[1]) == 1 then redis.call('PEXPIRE', KEYS[1], duration) end
return 0
