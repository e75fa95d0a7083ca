-- One page of a search of the snapshot for live states whose value contains a string (a role
-- key, a user id), so that a caller reads the few matches instead of the whole snapshot. The
-- caller checks each match in its JSON: the string may also occur elsewhere in the value.
--
-- KEYS[1] snapshot
-- ARGV[1] HSCAN cursor, ARGV[2] COUNT, ARGV[3] the string
-- Returns {next cursor, {id, value, id, value, ...}}.
local page = redis.call('HSCAN', KEYS[1], ARGV[1], 'COUNT', ARGV[2])
local flat, out = page[2], {}
for i = 1, #flat, 2 do
  local v = flat[i + 1]
  if string.match(v, '^%d+|%d+|0|') and string.find(v, ARGV[3], 1, true) then
    out[#out + 1] = flat[i]
    out[#out + 1] = v
  end
end
return {page[1], out}
