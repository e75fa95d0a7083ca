-- What the skip rule of the worker needs, in one round trip: the stored version of an
-- invitation (and whether it is a tombstone) and the newest version a webhook announced.
-- KEYS[1] snapshot, KEYS[2] announced key; ARGV[1] invitation id.
-- Returns {updated_at | nil, '0' | '1' | nil, announced | nil}.
local announced = redis.call('GET', KEYS[2])
local cur = redis.call('HGET', KEYS[1], ARGV[1])
if not cur then return {false, false, announced} end
local u, d = string.match(cur, '^(%d+)|%d+|([01])|')
return {u, d, announced}
