-- Writes maintenance records, only if the state is still the epoch the caller worked on: a
-- backfill that began before Redis lost its data must not record progress in the new state.
-- KEYS[1] meta, KEYS[2] records; ARGV[1] expected epoch, ARGV[2] 'filled' to mark the state
-- filled (a complete pass over Clerk's lists has been published into it), or '';
-- then pairs of record name and JSON value ('' deletes the record).
-- Returns {'ok', epoch} or {'epoch_changed', epoch | nil}.
-- @include epoch.lua
local time, now = clock()
local epoch = current_epoch(KEYS[1], '', time, now, false)
if epoch ~= ARGV[1] then return {'epoch_changed', epoch or false} end
if ARGV[2] == 'filled' then redis.call('HSET', KEYS[1], 'filled_at', now) end
for i = 3, #ARGV, 2 do
  if ARGV[i + 1] == '' then
    redis.call('HDEL', KEYS[2], ARGV[i])
  else
    redis.call('HSET', KEYS[2], ARGV[i], ARGV[i + 1])
  end
end
return {'ok', epoch}
