-- Gives back one request of the window in which it was taken: a sync job that made no BAPI
-- call (the state was held already, or it waits for a batch) took the worker limiter's token
-- for nothing. Not when the budget is blocked (a 429) or down to one, and not once the window
-- the token came from has ended: a refund then would hand out one of the next window's
-- requests.
-- KEYS[1] limiter key, KEYS[2] meta key; ARGV[1] window ms, ARGV[2] when the token was taken
-- (ms). Returns 1 when it gave the token back.
local count = tonumber(redis.call('GET', KEYS[1]) or 0)
-- Never to 0: the next request would then open a new window (PEXPIRE on the first), and the
-- window start the check below relies on would move under the tokens already taken.
if count <= 1 or count >= 9007199254740991 then return 0 end
local ttl = redis.call('PTTL', KEYS[1])
if ttl <= 0 then return 0 end
local duration = math.floor(math.abs(tonumber(redis.call('HGET', KEYS[2], 'duration') or ARGV[1])))
local time = redis.call('TIME')
local now = tonumber(time[1]) * 1000 + math.floor(tonumber(time[2]) / 1000)
-- The window began with its first token; allow for the hosts' clocks and PTTL's rounding.
if tonumber(ARGV[2]) < now - (duration - ttl) - 25 then return 0 end
redis.call('DECR', KEYS[1])
return 1
