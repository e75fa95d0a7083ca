-- Returns the state's meta hash as a flat list, creating a new epoch when there is none.
-- KEYS[1] meta; ARGV[1] epoch candidate.
-- @include epoch.lua
local time, now = clock()
current_epoch(KEYS[1], ARGV[1], time, now, true)
return redis.call('HGETALL', KEYS[1])
