package queue

// The Lua scripts of Redis. Every script gets the same KEYS (see Redis.keys): for each
// lane (High = 0, Normal = 1) five keys at lane*5+1 … lane*5+5, then the dead letters,
// the sequence counter and the lease-token counter. All times are microseconds of the
// queue's injected clock, passed in ARGV; Redis's own clock is never read (it only
// stamps stream entry IDs, which are used for order, not for time).
//
// Stream entries (lane streams and dead letters) have the fields id, kind, p
// (priority), body, nb (NotBefore, unix nanoseconds, "" for none), a (attempts) and e
// (last error). A delayed message is the same field list packed with cmsgpack in the
// lane's delayed hash, under a member of the lane's schedule.

// luaPrelude is shared by all scripts.
const luaPrelude = `
local function key(lane, i) return KEYS[lane * 5 + i] end
local STREAM, SCHEDULE, DELAYED, LEASES, DEADLINES = 1, 2, 3, 4, 5
local DEAD, SEQ, TOKEN, HB = KEYS[11], KEYS[12], KEYS[13], KEYS[14]

-- seqMember returns a new schedule member: zero-padded, so that members due at the
-- same moment sort in the order they were scheduled.
local function seqMember()
  return string.format('%016d', redis.call('INCR', SEQ))
end

-- promote moves the lane's delayed messages due at now (inclusive) to the end of its
-- stream, earliest first.
local function promote(lane, now)
  local due = redis.call('ZRANGEBYSCORE', key(lane, SCHEDULE), '-inf', now, 'LIMIT', 0, 500)
  if #due == 0 then return end
  for _, m in ipairs(due) do
    local packed = redis.call('HGET', key(lane, DELAYED), m)
    if packed then
      redis.call('XADD', key(lane, STREAM), '*', unpack(cmsgpack.unpack(packed)))
    end
  end
  redis.call('ZREM', key(lane, SCHEDULE), unpack(due))
  redis.call('HDEL', key(lane, DELAYED), unpack(due))
end

-- release ends the lease of entry id: it leaves the stream and the group for good.
local function release(lane, group, id)
  redis.call('XACK', key(lane, STREAM), group, id)
  redis.call('XDEL', key(lane, STREAM), id)
  redis.call('HDEL', key(lane, LEASES), id)
  redis.call('ZREM', key(lane, DEADLINES), id)
end
`

// luaEnqueue adds messages. ARGV: now, then per message lane, due ("" when ready
// now), id ("" to assign one), kind, body, nb. Delayed messages that are due are
// promoted first, so that within a lane messages keep the order they became ready in.
// Returns the number of messages added.
const luaEnqueue = luaPrelude + `
local now = ARGV[1]
promote(0, now)
promote(1, now)
local n = 0
for i = 2, #ARGV, 6 do
  local lane, due, id = tonumber(ARGV[i]), ARGV[i + 1], ARGV[i + 2]
  if id == '' then id = string.format('%d', redis.call('INCR', SEQ)) end
  local f = {'id', id, 'kind', ARGV[i + 3], 'p', ARGV[i], 'body', ARGV[i + 4], 'nb', ARGV[i + 5], 'a', '0', 'e', ''}
  if due == '' then
    redis.call('XADD', key(lane, STREAM), '*', unpack(f))
  else
    local m = seqMember()
    redis.call('ZADD', key(lane, SCHEDULE), due, m)
    redis.call('HSET', key(lane, DELAYED), m, cmsgpack.pack(f))
  end
  n = n + 1
end
return n
`

// luaReserve leases up to max messages, lane by lane: first the lane's due delayed
// messages are promoted, then its expired leases are taken over (XCLAIM), then new
// entries are read (XREADGROUP). Each lease gets a new token and a deadline. First,
// the consumer's heartbeat is renewed, and the leases of consumers whose heartbeat
// has expired are expired (a consumer left with nothing is removed from the group).
// ARGV: group, consumer, now, visibility, max, the consumer's heartbeat deadline.
// Returns {1, {{lane, entry id, token, fields}, …}}, or {0, next} when nothing is
// ready, next being the earliest moment (µs) something falls due or -1.
const luaReserve = luaPrelude + `
local group, consumer, now, max = ARGV[1], ARGV[2], tonumber(ARGV[3]), tonumber(ARGV[5])
local deadline = now + tonumber(ARGV[4])
local out = {}

redis.call('ZADD', HB, ARGV[6], consumer)
for _, gone in ipairs(redis.call('ZRANGEBYSCORE', HB, '-inf', '(' .. ARGV[3], 'LIMIT', 0, 8)) do
  local left = 0
  for lane = 0, 1 do
    local ok, pending = pcall(redis.call, 'XPENDING', key(lane, STREAM), group, '-', '+', 1000, gone)
    if ok then
      for _, p in ipairs(pending) do
        if redis.call('HEXISTS', key(lane, LEASES), p[1]) == 1 then
          redis.call('ZADD', key(lane, DEADLINES), 0, p[1])
        end
      end
      left = left + #pending
    end
  end
  if left == 0 then
    redis.call('ZREM', HB, gone)
    for lane = 0, 1 do pcall(redis.call, 'XGROUP', 'DELCONSUMER', key(lane, STREAM), group, gone) end
  end
end

local function lease(lane, entries)
  for _, e in ipairs(entries) do
    if type(e) == 'table' then -- older servers reply nil for a deleted entry
      local tok = redis.call('INCR', TOKEN)
      redis.call('HSET', key(lane, LEASES), e[1], tok)
      redis.call('ZADD', key(lane, DEADLINES), deadline, e[1])
      out[#out + 1] = {lane, e[1], tok, e[2]}
    end
  end
end

for lane = 0, 1 do
  promote(lane, ARGV[3])
  if #out < max then
    -- A lease expires once its deadline has passed (strictly).
    local expired = redis.call('ZRANGEBYSCORE', key(lane, DEADLINES), '-inf', '(' .. ARGV[3], 'LIMIT', 0, max - #out)
    if #expired > 0 then
      local claimed = redis.call('XCLAIM', key(lane, STREAM), group, consumer, 0, unpack(expired))
      local got = {}
      for _, e in ipairs(claimed) do
        if type(e) == 'table' then got[e[1]] = true end
      end
      for _, id in ipairs(expired) do
        if not got[id] then -- gone from the stream: nothing left to deliver
          redis.call('HDEL', key(lane, LEASES), id)
          redis.call('ZREM', key(lane, DEADLINES), id)
        end
      end
      lease(lane, claimed)
    end
  end
  if #out < max then
    local r = redis.pcall('XREADGROUP', 'GROUP', group, consumer, 'COUNT', max - #out, 'STREAMS', key(lane, STREAM), '>')
    if type(r) == 'table' and r.err then
      if not string.find(r.err, 'NOGROUP', 1, true) then return redis.error_reply(r.err) end
      -- The stream was deleted under us (a purge): start it again.
      redis.call('XGROUP', 'CREATE', key(lane, STREAM), group, '0', 'MKSTREAM')
      r = redis.call('XREADGROUP', 'GROUP', group, consumer, 'COUNT', max - #out, 'STREAMS', key(lane, STREAM), '>')
    end
    if r then lease(lane, r[1][2]) end
  end
end
if #out > 0 then return {1, out} end

local soonest = -1
local function earliest(k, after)
  local z = redis.call('ZRANGE', k, 0, 0, 'WITHSCORES')
  if #z == 2 then
    local t = tonumber(z[2]) + after
    if soonest < 0 or t < soonest then soonest = t end
  end
end
for lane = 0, 1 do
  earliest(key(lane, SCHEDULE), 0)
  earliest(key(lane, DEADLINES), 1)
end
return {0, soonest}
`

// luaAck releases the leases named by receipts that are still current; stale ones are
// ignored. ARGV: group, then per receipt lane, entry id, token. Returns the number
// released.
const luaAck = luaPrelude + `
local group, n = ARGV[1], 0
for i = 2, #ARGV, 3 do
  local lane, id = tonumber(ARGV[i]), ARGV[i + 1]
  if redis.call('HGET', key(lane, LEASES), id) == ARGV[i + 2] then
    release(lane, group, id)
    n = n + 1
  end
end
return n
`

// luaSettle retries or fails the message of a current lease. ARGV: group, lane, entry
// id, token, reason, mode ("retry" or "fail"), expected attempts, max attempts, due
// and nb of the retry. A retry is computed by the caller for the attempts it expects;
// when the stored count differs the script changes nothing and returns
// {"attempts", stored} so that the caller can compute again.
// Returns {"stale"}, {"attempts", n}, {"retried"} or {"dead"}.
const luaSettle = luaPrelude + `
local group, lane, id = ARGV[1], tonumber(ARGV[2]), ARGV[3]
if redis.call('HGET', key(lane, LEASES), id) ~= ARGV[4] then return {'stale'} end
local r = redis.call('XRANGE', key(lane, STREAM), id, id)
if #r == 0 then -- cannot happen while the lease is current; refuse to resurrect
  release(lane, group, id)
  return {'stale'}
end
local f = r[1][2]
local function set(name, value)
  for i = 1, #f, 2 do
    if f[i] == name then f[i + 1] = value; return end
  end
  f[#f + 1] = name
  f[#f + 1] = value
end
local function get(name)
  for i = 1, #f, 2 do
    if f[i] == name then return f[i + 1] end
  end
end
local a = tonumber(get('a')) or 0
local retry = ARGV[6] == 'retry'
if retry then
  if a ~= tonumber(ARGV[7]) then return {'attempts', a} end
  a = a + 1
end
set('a', string.format('%d', a))
set('e', ARGV[5])
if retry and a < tonumber(ARGV[8]) then
  set('nb', ARGV[10])
  local m = seqMember()
  redis.call('ZADD', key(lane, SCHEDULE), ARGV[9], m)
  redis.call('HSET', key(lane, DELAYED), m, cmsgpack.pack(f))
  release(lane, group, id)
  return {'retried'}
end
redis.call('XADD', DEAD, '*', unpack(f))
release(lane, group, id)
return {'dead'}
`
