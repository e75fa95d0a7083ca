-- Takes the invitations whose expiry is due: members of the expiries set (`organization_id/
-- invitation_id`, scored by `expires_at`) scored at or before ARGV[1] (ms), at most ARGV[2] of
-- them, removed in the same step so that two workers never take the same one.
--
-- KEYS[1] expiries
-- Returns the members taken.
local due = redis.call('ZRANGE', KEYS[1], '-inf', ARGV[1], 'BYSCORE', 'LIMIT', 0, tonumber(ARGV[2]))
if #due > 0 then redis.call('ZREM', KEYS[1], unpack(due)) end
return due
