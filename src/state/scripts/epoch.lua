-- Shared by the scripts that may be the first to touch a mirror's state (included at load).
-- A missing meta hash means a new state: Redis was empty (a fresh install, a flush, a new
-- Redis), so it gets a new epoch, which tells every replica that what it holds came from
-- another state. The epoch mixes the caller's random candidate with Redis' clock.
local function current_epoch(meta, candidate, time, now, create)
  local epoch = redis.call('HGET', meta, 'epoch')
  if epoch or not create then return epoch end
  epoch = candidate .. '-' .. time[1] .. time[2]
  redis.call('HSET', meta, 'epoch', epoch, 'created_at', now, 'seq', 0, 'last', '0-0')
  return epoch
end

local function clock()
  local time = redis.call('TIME')
  return time, tonumber(time[1]) * 1000 + math.floor(tonumber(time[2]) / 1000)
end
