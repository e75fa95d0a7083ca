-- The one rule by which canonical states enter the shared state. For each state: compare it
-- with the snapshot; if it is newer, or has the same updated_at but different content and
-- was observed later, store it in the snapshot and append it to the change stream, both in
-- this one atomic script. Between a 404 and a 200 (presence) the later observation wins:
-- a tombstone keeps the version of the state it replaced, BAPI's, never one an event
-- announced (an event's updated_at is only a claim: a far-future one would keep the
-- invitation out for good); a state observed after the 404 revives it unless it is older
-- than the state BAPI gave before the 404 (a lagging read). A 404 under an organization
-- other than the one the snapshot holds the invitation under changes nothing: it says only
-- that the invitation is not in that organization (an event that named the wrong one).
--
-- KEYS[1] meta, KEYS[2] snapshot, KEYS[3] changes stream, KEYS[4] records, KEYS[5] expiries,
-- KEYS[6] organizations
-- ARGV[1] epoch candidate (used when the state is new)
-- ARGV[2] stream retention in ms (entries older than that are trimmed, approximately)
-- ARGV[3] flags: 'd' dry run (compare only, write nothing), 'p' return each previous header,
--   'o' this run ends a complete listing of the organizations (meta's organizations_listed
--   becomes the sequence number after it)
-- ARGV[4] expected epoch, or '' for any
-- ARGV[5] record name to write with the states (a backfill cursor), or ''
-- ARGV[6] its JSON value ('' deletes it)
-- then 9 per state: id, updated_at, gone ('1'/'0'), observed_at, content hash, tail, received_at,
-- expiry member (`organization_id/id`, '' for an organization), expires_at if the state is
-- pending (else '')
--
-- An organization's state (id `org_…`) lives in the organizations hash instead of the
-- snapshot, under the same rule, and its changes go into the same stream, so a replica
-- applies organizations and invitations in one order.
--
-- The expiries set holds each pending invitation whose expiry is still ahead, scored by its
-- expires_at, so that a worker re-fetches it when it expires (scripts/due.lua). A state that
-- wins or is confirmed sets it; any other present or gone state removes it.
--
-- A stored value is `updated_at|confirmed_at|deleted|hash|tail` where tail is
-- `fields-json\nraw-json` (state/codec.ts). Each run that changed anything appends one
-- stream entry with one field, e: the previous entry's id, the sequence number of the run's
-- last change, then one record per change, `id|received_at|value`, all separated by the
-- ASCII record separator (0x1e), which valid JSON cannot hold outside escapes. The previous
-- id lets a reader detect a gap; received_at (when the receiver accepted the event behind
-- it) measures lag. One entry per run, not per change: a reader decodes a few large
-- strings instead of many small ones, and Redis stores one entry header per batch.
--
-- Returns {'ok', epoch, outcomes} or {'epoch_changed', epoch}; an outcome is
-- inserted | updated | unchanged | stale, or {outcome, previous header and fields} with 'p'.
-- @include epoch.lua
local meta, invitations, changes, records, expiries, organizations = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5], KEYS[6]
local dry = string.find(ARGV[3], 'd', 1, true) ~= nil
local want_previous = string.find(ARGV[3], 'p', 1, true) ~= nil
local listed_organizations = string.find(ARGV[3], 'o', 1, true) ~= nil
local time, now = clock()
local epoch = current_epoch(meta, ARGV[1], time, now, not dry)
if ARGV[4] ~= '' and ARGV[4] ~= epoch then return {'epoch_changed', epoch or false} end

local last = redis.call('HGET', meta, 'last') or '0-0'
local seq = tonumber(redis.call('HGET', meta, 'seq') or '0')
local minid = (now - tonumber(ARGV[2])) .. '-0'
local RS = '\30'
local changed = {}
local outcomes = {}

-- The version BAPI gave for the state a tombstone replaced: the updated_at of the JSON the
-- tombstone keeps, 0 when it keeps none (BAPI never answered one). Not the tombstone's own
-- version: releases before this one raised it to the updated_at of the event behind the 404.
local function answered_version(cur, at)
  local nl = string.find(cur, '\n', at, true)
  if not nl or nl == #cur then return 0 end
  local ok, json = pcall(cjson.decode, string.sub(cur, nl + 1))
  if ok and type(json) == 'table' and type(json.updated_at) == 'number' then return json.updated_at end
  return 0
end

for i = 7, #ARGV, 9 do
  local id, u, gone, c, h, tail, r = ARGV[i], tonumber(ARGV[i + 1]), ARGV[i + 2] == '1', tonumber(ARGV[i + 3]), ARGV[i + 4], ARGV[i + 5], ARGV[i + 6]
  local member, expiry = ARGV[i + 7], ARGV[i + 8]
  local snapshot = string.sub(id, 1, 4) == 'org_' and organizations or invitations
  local cur = redis.call('HGET', snapshot, id)
  local outcome, value
  -- An invitation's organization: the state's from its expiry member, the stored one's from
  -- the first of its fields (`["org_…",…`).
  local organization = member ~= '' and string.match(member, '^([^/]*)/') or nil
  local stored_organization
  if cur then
    local su, sc, sd, sh, at = string.match(cur, '^(%d+)|(%d+)|([01])|([^|]*)|()')
    su, sc = tonumber(su), tonumber(sc)
    local stored_gone = sd == '1'
    stored_organization = organization and string.match(cur, '^%["([^"]*)"', at)
    local other_organization = stored_organization ~= nil and stored_organization ~= organization
    local later = c > sc and 'updated' or 'stale'
    if gone then
      -- The tombstone keeps the stored version, BAPI's. A 404 under another organization than
      -- the stored one says only that the invitation is not there: nothing changes.
      u = su
      if other_organization then
        outcome = 'stale'
      elseif stored_gone then
        outcome = 'unchanged'
      else
        outcome = later
      end
    elseif stored_gone then
      -- A tombstone under another organization (a 404 there when nothing was known of the
      -- invitation) says nothing about this one; else the later observation wins, unless it
      -- is older than what BAPI answered before the 404 (a lagging read).
      if other_organization then
        outcome = 'updated'
      elseif u < answered_version(cur, at) then
        outcome = 'stale'
      else
        outcome = later
      end
    elseif u ~= su then
      outcome = u > su and 'updated' or 'stale'
    elseif h == sh then
      outcome = 'unchanged'
    else
      outcome = later
    end
    if outcome == 'updated' then
      if gone then
        value = u .. '|' .. c .. '|1|' .. sh .. '|' .. string.sub(cur, at)
      else
        value = u .. '|' .. c .. '|0|' .. h .. '|' .. tail
      end
    elseif outcome == 'unchanged' and c > sc and not dry then
      -- Confirmed again: only the confirmation time moves; replicas do not need to know.
      redis.call('HSET', snapshot, id, su .. '|' .. c .. '|' .. sd .. '|' .. sh .. '|' .. string.sub(cur, at))
    end
  else
    outcome = 'inserted'
    value = u .. '|' .. c .. '|' .. (gone and '1' or '0') .. '|' .. h .. '|' .. tail
  end
  if value and not dry then
    redis.call('HSET', snapshot, id, value)
    changed[#changed + 1] = id .. '|' .. r .. '|' .. value
  end
  if not dry and outcome ~= 'stale' and member ~= '' then
    -- BAPI answered it under another organization (ids are global: its answer is the truth).
    if stored_organization and stored_organization ~= organization then
      redis.call('ZREM', expiries, stored_organization .. '/' .. id)
    end
    -- Only an expiry still ahead: a pending state past its expires_at is not scheduled again.
    if expiry ~= '' and tonumber(expiry) > now then
      redis.call('ZADD', expiries, expiry, member)
    else
      redis.call('ZREM', expiries, member)
    end
  end
  if want_previous then
    local previous = false
    if cur then
      local nl = string.find(cur, '\n', 1, true)
      previous = nl and string.sub(cur, 1, nl - 1) or cur
    end
    outcomes[#outcomes + 1] = {outcome, previous}
  else
    outcomes[#outcomes + 1] = outcome
  end
end

if #changed > 0 then
  seq = seq + #changed
  last = redis.call('XADD', changes, 'MINID', '~', minid, '*', 'e', last .. RS .. seq .. RS .. table.concat(changed, RS))
  redis.call('HSET', meta, 'last', last, 'seq', seq)
end
if listed_organizations and not dry then redis.call('HSET', meta, 'organizations_listed', seq) end
if ARGV[5] ~= '' and not dry then
  if ARGV[6] == '' then redis.call('HDEL', records, ARGV[5]) else redis.call('HSET', records, ARGV[5], ARGV[6]) end
end
return {'ok', epoch or false, outcomes}
