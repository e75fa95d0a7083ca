-- What the skip rule of the worker needs, in one round trip for every job of a turn: the
-- stored version of each invitation (and whether it is a tombstone), the newest version a
-- webhook announced for it, and how many invitations of its organization webhooks announced
-- since a given time (the worker's batches, worker/batch.ts).
-- KEYS[1] snapshot, KEYS[2..n+1] the announced key of each invitation, KEYS[n+2..2n+1] the
-- recent announcements of each one's organization; ARGV[1] since (ms), ARGV[2..] the ids.
-- Returns {updated_at | false, '0' | '1' | false, announced | false, recent count} for each,
-- flattened.
local n = #ARGV - 1
local out = {}
for i = 1, n do
  local announced = redis.call('GET', KEYS[i + 1])
  local cur = redis.call('HGET', KEYS[1], ARGV[i + 1])
  local u, d = false, false
  if cur then u, d = string.match(cur, '^(%d+)|%d+|([01])|') end
  out[#out + 1] = u or false
  out[#out + 1] = d or false
  out[#out + 1] = announced or false
  out[#out + 1] = redis.call('ZCOUNT', KEYS[n + i + 1], ARGV[1], '+inf')
end
return out
