-- What the skip rule of the worker needs, in one round trip for every job of a turn: the
-- stored version of each invitation (and whether it is a tombstone) and the newest version a
-- webhook announced for it.
-- KEYS[1] snapshot, KEYS[2..] the announced key of each invitation; ARGV the invitation ids.
-- Returns {updated_at | false, '0' | '1' | false, announced | false} for each, flattened.
local out = {}
for i = 1, #ARGV do
  local announced = redis.call('GET', KEYS[i + 1])
  local cur = redis.call('HGET', KEYS[1], ARGV[i])
  local u, d = false, false
  if cur then u, d = string.match(cur, '^(%d+)|%d+|([01])|') end
  out[#out + 1] = u or false
  out[#out + 1] = d or false
  out[#out + 1] = announced or false
end
return out
