package campaigns

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

	"consentmail/preferences"
)

// RedisTrackerOptions configures a RedisTracker. Zero fields take the documented
// defaults.
type RedisTrackerOptions struct {
	// Prefix starts every key the tracker uses, e.g. "consentmail:" (the queue's).
	Prefix string
	// Now is the clock that claim deadlines are compared with (default time.Now);
	// the Redis server's clock is never read. Every process sharing a tracker must
	// use the same (or a well-synchronised) clock.
	Now func() time.Time
}

// RedisTracker is the Tracker on Redis, shared by any number of worker processes. It
// is also the preferences.WithdrawalMirror that tells those workers of withdrawals
// of consent: Withdraw records the withdrawal, then waits (at most WithdrawalWait)
// until no send claimed before it is under way, so that once a withdrawal has
// answered no later message goes to that person. It is safe for concurrent use.
//
// Each tracker has an id, written into its claims, and a heartbeat in Redis, renewed
// by each Claim and Record and by Beat: the claims of a tracker whose heartbeat has
// expired (its process died) end then, not at their deadline, so that another worker
// goes on with the campaign within seconds.
//
// Every operation is one round trip and atomic: a Lua script where it reads before it
// writes, otherwise a single command. Claim therefore never hands one recipient to two
// workers whose claims overlap in time, and Record never counts a result twice.
//
// Keys, all starting with RedisTrackerOptions.Prefix followed by "{cm}:" (a hash tag,
// so that on Redis Cluster they share a slot as the scripts require):
//
//	def:<campaign>  the published Definition, JSON
//	st:<campaign>   the campaign's status
//	r:<campaign>    hash of subscriber → result "s", "f", "b" or "k", or a claim
//	                "p<deadline, unix ms>:<tracker id>"
//	n:<campaign>    hash of counters sent, failed, skipped, jobs, bounced (among failed)
//	d:<campaign>    hash of per-domain counters "s:<domain>" (sent), "b:<domain>"
//	                (bounced) and "#", the number of domains apart from "other"
//	j:<campaign>    set of the sequence numbers of done jobs
//	ws              hash of subscriber → "1" while withdrawn as a whole
//	wd              hash of subscriber → the lists withdrawn, comma-separated
//	fl:<subscriber> sorted set of the campaigns being sent to the subscriber right
//	                now (claimed, not recorded), scored by the claim's deadline
//	hb              sorted set of tracker id → heartbeat deadline (unix ms)
//	bq              list of hard bounces (JSON HardBounce) for the store's owner
//
// # Caveats
//
// Subscriber and list ids must not contain ',' (the scripts' separator); such ids are
// refused. Nothing expires: the keys of a finished campaign stay until deleted.
// Durability is Redis's: configure AOF on a server whose results must survive a
// crash, or a redelivered job may send again to recipients whose results were lost.
type RedisTracker struct {
	client redis.UniversalClient
	now    func() time.Time
	base   string // Prefix + "{cm}:"
	ws, wd string // keys of the withdrawals
	hb     string // key of the heartbeats
	bq     string // key of the hard bounces waiting for the store's owner
	id     string // this tracker's id in its claims and heartbeat

	claim, record, jobDone, withdraw, restore *redis.Script
}

var (
	_ Tracker                      = (*RedisTracker)(nil)
	_ preferences.WithdrawalMirror = (*RedisTracker)(nil)
)

// NewRedisTracker returns a tracker stored in Redis through client under opts.Prefix.
// client is opened and closed by the caller.
func NewRedisTracker(client redis.UniversalClient, opts RedisTrackerOptions) *RedisTracker {
	if opts.Now == nil {
		opts.Now = time.Now
	}
	base := opts.Prefix + "{cm}:"
	return &RedisTracker{
		client:   client,
		now:      opts.Now,
		base:     base,
		ws:       base + "ws",
		wd:       base + "wd",
		hb:       base + "hb",
		bq:       base + "bq",
		id:       newTrackerID(),
		claim:    redis.NewScript(luaTrackerClaim),
		record:   redis.NewScript(luaTrackerRecord),
		jobDone:  redis.NewScript(luaTrackerJobDone),
		withdraw: redis.NewScript(luaTrackerWithdraw),
		restore:  redis.NewScript(luaTrackerRestore),
	}
}

func (t *RedisTracker) key(kind, campaign string) string { return t.base + kind + ":" + campaign }

// flight is the key of the sends under way to subscriber.
func (t *RedisTracker) flight(subscriber string) string { return t.base + "fl:" + subscriber }

// A tracker's heartbeat lasts heartbeatTTL from its last renewal; Beat renews it every
// heartbeatEvery. A worker stalled longer than heartbeatTTL (which a live process
// never is) may see its claims taken over: its messages then go twice at most.
const (
	heartbeatTTL   = 5 * time.Second
	heartbeatEvery = time.Second
)

func newTrackerID() string {
	var b [8]byte
	rand.Read(b[:]) // never fails
	return hex.EncodeToString(b[:])
}

// Beat keeps this tracker's heartbeat alive until ctx ends, then ends it, so that
// the claims it leaves (none, after a graceful stop) are taken over at once. Run it
// in every process that claims, for as long as its workers may send.
func (t *RedisTracker) Beat(ctx context.Context) error {
	tick := time.NewTicker(heartbeatEvery)
	defer tick.Stop()
	for {
		now := t.now()
		// An error (Redis away) is not reported: the next beat tries again, and the
		// claims stand until the heartbeat expires.
		_, _ = t.client.Pipelined(ctx, func(p redis.Pipeliner) error {
			p.ZAdd(ctx, t.hb, redis.Z{Score: float64(now.Add(heartbeatTTL).UnixMilli()), Member: t.id})
			// Heartbeats of trackers gone for an hour are of no use to anyone.
			p.ZRemRangeByScore(ctx, t.hb, "-inf", strconv.FormatInt(now.Add(-time.Hour).UnixMilli(), 10))
			return nil
		})
		select {
		case <-ctx.Done():
			end, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Second)
			t.client.ZRem(end, t.hb, t.id)
			cancel()
			return nil
		case <-tick.C:
		}
	}
}

// Publish stores def and its status in one MSET, so a worker never reads a
// definition with another version's status.
func (t *RedisTracker) Publish(ctx context.Context, def *Definition) error {
	if def == nil {
		return errors.New("campaigns: publish: nil definition")
	}
	if err := checkCampaignID(def.ID); err != nil {
		return err
	}
	if !knownStatus(def.Status) {
		return fmt.Errorf("campaigns: publish %s: unknown status %q", def.ID, def.Status)
	}
	b, err := json.Marshal(def)
	if err != nil {
		return fmt.Errorf("campaigns: publish %s: %w", def.ID, err)
	}
	if err := t.client.MSet(ctx, t.key("def", def.ID), b, t.key("st", def.ID), def.Status).Err(); err != nil {
		return fmt.Errorf("campaigns: publish %s: %w", def.ID, err)
	}
	return nil
}

// Definition returns the published definition of campaign id with its current
// status, or an error wrapping ErrCampaignNotFound.
func (t *RedisTracker) Definition(ctx context.Context, id string) (*Definition, error) {
	if err := checkCampaignID(id); err != nil {
		return nil, err
	}
	vals, err := t.client.MGet(ctx, t.key("def", id), t.key("st", id)).Result()
	if err != nil {
		return nil, fmt.Errorf("campaigns: definition %s: %w", id, err)
	}
	raw, ok := vals[0].(string)
	if !ok {
		return nil, fmt.Errorf("definition %s: %w", id, ErrCampaignNotFound)
	}
	var def Definition
	if err := json.Unmarshal([]byte(raw), &def); err != nil {
		return nil, fmt.Errorf("campaigns: definition %s: %w", id, err)
	}
	if st, ok := vals[1].(string); ok {
		def.Status = st
	}
	return &def, nil
}

// Claim decides for each recipient of a job; see Tracker. It is one script: the
// status check, the look-ups and every claim and skip happen atomically. A
// subscriber listed twice in rs gets Done the second time.
func (t *RedisTracker) Claim(ctx context.Context, campaign string, rs []preferences.Recipient, until time.Time) ([]Verdict, error) {
	if err := checkCampaignID(campaign); err != nil {
		return nil, err
	}
	if len(rs) == 0 {
		return nil, nil
	}
	now := t.now()
	args := make([]any, 0, 5+2*len(rs))
	args = append(args, now.UnixMilli(), until.UnixMilli(), t.id, now.Add(heartbeatTTL).UnixMilli(), campaign)
	keys := make([]string, 0, 6+len(rs))
	keys = append(keys, t.key("st", campaign), t.key("r", campaign), t.key("n", campaign), t.ws, t.wd, t.hb)
	for _, r := range rs {
		if err := checkSubscriberID(r.ID); err != nil {
			return nil, err
		}
		for _, l := range r.Lists {
			if err := checkListID(l); err != nil {
				return nil, err
			}
		}
		args = append(args, r.ID, strings.Join(r.Lists, ","))
		keys = append(keys, t.flight(r.ID))
	}
	res, err := t.claim.Run(ctx, t.client, keys, args...).Result()
	if err != nil {
		return nil, fmt.Errorf("campaigns: claim %s: %w", campaign, err)
	}
	out := make([]Verdict, len(rs))
	switch res := res.(type) {
	case int64: // the campaign is not running: the same verdict for all
		v := Verdict(res)
		if v != Paused && v != Cancelled {
			return nil, fmt.Errorf("campaigns: claim %s: unexpected reply %d", campaign, res)
		}
		for i := range out {
			out[i] = v
		}
	case string:
		if len(res) != len(rs) {
			return nil, fmt.Errorf("campaigns: claim %s: %d verdicts for %d recipients", campaign, len(res), len(rs))
		}
		for i := range len(res) {
			switch res[i] {
			case 's':
				out[i] = Send
			case 'k':
				out[i] = Skip
			case 'd':
				out[i] = Done
			case 'b':
				out[i] = Busy
			default:
				return nil, fmt.Errorf("campaigns: claim %s: unexpected verdict %q", campaign, res[i])
			}
		}
	default:
		return nil, fmt.Errorf("campaigns: claim %s: unexpected reply %v", campaign, res)
	}
	return out, nil
}

// Record stores and counts results in one script; see Tracker. An empty batch costs
// no round trip.
func (t *RedisTracker) Record(ctx context.Context, campaign string, outcomes []Outcome) error {
	if err := checkCampaignID(campaign); err != nil {
		return err
	}
	if len(outcomes) == 0 {
		return nil
	}
	now := t.now()
	args := make([]any, 0, 4+4*len(outcomes))
	args = append(args, campaign, t.id, now.Add(heartbeatTTL).UnixMilli(), MaxDomains)
	keys := make([]string, 0, 5+len(outcomes))
	keys = append(keys, t.key("r", campaign), t.key("n", campaign), t.hb, t.bq, t.key("d", campaign))
	for _, o := range outcomes {
		if err := checkSubscriberID(o.Subscriber); err != nil {
			return err
		}
		entry := ""
		switch o.Result {
		case ResultBounced:
			b, err := json.Marshal(HardBounce{Campaign: campaign, Subscriber: o.Subscriber, Status: o.Status, Reply: o.Reply})
			if err != nil {
				return err
			}
			entry = string(b)
			fallthrough
		case ResultSent, ResultFailed, ResultSkipped:
			args = append(args, o.Subscriber, string(rune(o.Result)), entry, o.Domain)
		case ResultNone:
			args = append(args, o.Subscriber, "0", entry, o.Domain)
		default:
			return fmt.Errorf("campaigns: record %s: unknown result %d for %s", campaign, o.Result, o.Subscriber)
		}
		keys = append(keys, t.flight(o.Subscriber))
	}
	if err := t.record.Run(ctx, t.client, keys, args...).Err(); err != nil {
		return fmt.Errorf("campaigns: record %s: %w", campaign, err)
	}
	return nil
}

// Result returns the recorded result of subscriber, or 0 when there is none (a claim
// is not a result).
func (t *RedisTracker) Result(ctx context.Context, campaign, subscriber string) (Result, error) {
	if err := checkCampaignID(campaign); err != nil {
		return 0, err
	}
	if err := checkSubscriberID(subscriber); err != nil {
		return 0, err
	}
	v, err := t.client.HGet(ctx, t.key("r", campaign), subscriber).Result()
	if errors.Is(err, redis.Nil) {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("campaigns: result %s of %s: %w", subscriber, campaign, err)
	}
	if len(v) == 1 {
		switch r := Result(v[0]); r {
		case ResultSent, ResultFailed, ResultSkipped, ResultBounced:
			return r, nil
		}
	}
	return 0, nil // a claim
}

// Counts returns the campaign's counters (all zero for a campaign never claimed).
func (t *RedisTracker) Counts(ctx context.Context, campaign string) (Counts, error) {
	if err := checkCampaignID(campaign); err != nil {
		return Counts{}, err
	}
	var get *redis.SliceCmd
	var doms *redis.MapStringStringCmd
	_, err := t.client.Pipelined(ctx, func(p redis.Pipeliner) error {
		get = p.HMGet(ctx, t.key("n", campaign), "sent", "failed", "skipped", "jobs", "bounced")
		doms = p.HGetAll(ctx, t.key("d", campaign))
		return nil
	})
	if err != nil {
		return Counts{}, fmt.Errorf("campaigns: counts %s: %w", campaign, err)
	}
	vals := get.Val()
	var n [5]int64
	for i, v := range vals {
		s, ok := v.(string)
		if !ok {
			continue
		}
		if n[i], err = strconv.ParseInt(s, 10, 64); err != nil {
			return Counts{}, fmt.Errorf("campaigns: counts %s: %w", campaign, err)
		}
	}
	c := Counts{Sent: n[0], Failed: n[1], Skipped: n[2], JobsDone: n[3], Bounced: n[4]}
	for f, v := range doms.Val() {
		kind, dom, ok := strings.Cut(f, ":")
		if !ok {
			continue // the number of domains
		}
		x, err := strconv.ParseInt(v, 10, 64)
		if err != nil {
			return Counts{}, fmt.Errorf("campaigns: counts %s: domain %s: %w", campaign, dom, err)
		}
		if c.Domains == nil {
			c.Domains = map[string]DomainSends{}
		}
		d := c.Domains[dom]
		switch kind {
		case "s":
			d.Sent = x
		case "b":
			d.Bounced = x
		}
		c.Domains[dom] = d
	}
	return c, nil
}

// HardBounces returns the oldest hard bounces not acknowledged; see Tracker.
func (t *RedisTracker) HardBounces(ctx context.Context, max int) ([]HardBounce, error) {
	if max <= 0 {
		return nil, nil
	}
	raw, err := t.client.LRange(ctx, t.bq, 0, int64(max)-1).Result()
	if err != nil {
		return nil, fmt.Errorf("campaigns: hard bounces: %w", err)
	}
	out := make([]HardBounce, len(raw))
	for i, r := range raw {
		if err := json.Unmarshal([]byte(r), &out[i]); err != nil {
			return nil, fmt.Errorf("campaigns: hard bounce %d: %w", i, err)
		}
	}
	return out, nil
}

// AckHardBounces removes the n oldest hard bounces; see Tracker. The store's owner
// is their only reader.
func (t *RedisTracker) AckHardBounces(ctx context.Context, n int) error {
	if n <= 0 {
		return nil
	}
	if err := t.client.LTrim(ctx, t.bq, int64(n), -1).Err(); err != nil {
		return fmt.Errorf("campaigns: acknowledge hard bounces: %w", err)
	}
	return nil
}

// JobDone records that job seq of the campaign is done; see Tracker.
func (t *RedisTracker) JobDone(ctx context.Context, campaign string, seq int64) error {
	if err := checkCampaignID(campaign); err != nil {
		return err
	}
	keys := []string{t.key("j", campaign), t.key("n", campaign)}
	if err := t.jobDone.Run(ctx, t.client, keys, seq).Err(); err != nil {
		return fmt.Errorf("campaigns: job done %s: %w", campaign, err)
	}
	return nil
}

// Status returns the published status of the campaign ("" when none).
func (t *RedisTracker) Status(ctx context.Context, campaign string) (string, error) {
	if err := checkCampaignID(campaign); err != nil {
		return "", err
	}
	st, err := t.client.Get(ctx, t.key("st", campaign)).Result()
	if errors.Is(err, redis.Nil) {
		return "", nil
	}
	if err != nil {
		return "", fmt.Errorf("campaigns: status %s: %w", campaign, err)
	}
	return st, nil
}

// luaTrackerJobDone adds a job to the done set, counting it once. KEYS: j, n. ARGV: seq.
const luaTrackerJobDone = `
if redis.call('SADD', KEYS[1], ARGV[1]) == 1 then redis.call('HINCRBY', KEYS[2], 'jobs', 1) end
return 0
`

// Withdraw records that subscriber may no longer receive mail for lists, or for any
// list when lists is nil; Claim skips them from then on. An empty non-nil lists
// withdraws nothing. Withdrawing again changes nothing.
//
// Once the withdrawal is recorded, Withdraw waits until no send to subscriber claimed
// before it is under way (each one is recorded within moments of the relay's
// replies), for at most WithdrawalWait: a worker never starts handing a group to a
// relay later than half of that after its claim.
func (t *RedisTracker) Withdraw(ctx context.Context, subscriber string, lists []string) error {
	if err := t.mirror(ctx, "withdraw", subscriber, lists); err != nil || (lists != nil && len(lists) == 0) {
		return err
	}
	give := time.NewTimer(WithdrawalWait)
	defer give.Stop()
	poll := time.NewTicker(withdrawPoll)
	defer poll.Stop()
	for {
		n, err := t.client.ZCount(ctx, t.flight(subscriber), strconv.FormatInt(t.now().UnixMilli()+1, 10), "+inf").Result()
		if err != nil {
			return fmt.Errorf("campaigns: withdraw %s: sends under way: %w", subscriber, err)
		}
		if n == 0 {
			return nil
		}
		select {
		case <-poll.C:
		case <-give.C:
			return nil
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// withdrawPoll is how often Withdraw looks whether the sends under way have settled.
const withdrawPoll = 5 * time.Millisecond

// Restore undoes Withdraw for lists, or the withdrawal as a whole when lists is nil;
// the lists withdrawn one by one stay withdrawn. Restoring what is not withdrawn
// changes nothing.
func (t *RedisTracker) Restore(ctx context.Context, subscriber string, lists []string) error {
	return t.mirror(ctx, "restore", subscriber, lists)
}

func (t *RedisTracker) mirror(ctx context.Context, op, subscriber string, lists []string) error {
	if err := checkSubscriberID(subscriber); err != nil {
		return err
	}
	for _, l := range lists {
		if err := checkListID(l); err != nil {
			return err
		}
	}
	var err error
	switch {
	case lists == nil && op == "withdraw":
		err = t.client.HSet(ctx, t.ws, subscriber, "1").Err()
	case lists == nil:
		err = t.client.HDel(ctx, t.ws, subscriber).Err()
	case len(lists) == 0:
		return nil
	default:
		script := t.withdraw
		if op == "restore" {
			script = t.restore
		}
		args := make([]any, 0, 1+len(lists))
		args = append(args, subscriber)
		for _, l := range lists {
			args = append(args, l)
		}
		err = script.Run(ctx, t.client, []string{t.wd}, args...).Err()
	}
	if err != nil {
		return fmt.Errorf("campaigns: %s %s: %w", op, subscriber, err)
	}
	return nil
}

func knownStatus(s string) bool {
	switch s {
	case StatusDraft, StatusScheduled, StatusRunning, StatusPaused, StatusCancelled, StatusFinished:
		return true
	}
	return false
}

func checkCampaignID(id string) error {
	if id == "" {
		return errors.New("campaigns: empty campaign id")
	}
	return nil
}

func checkSubscriberID(id string) error {
	if id == "" || strings.Contains(id, ",") {
		return fmt.Errorf("campaigns: invalid subscriber id %q", id)
	}
	return nil
}

func checkListID(id string) error {
	if id == "" || strings.Contains(id, ",") {
		return fmt.Errorf("campaigns: invalid list id %q", id)
	}
	return nil
}

// The Lua scripts of RedisTracker. Times are unix milliseconds of the tracker's clock,
// passed in ARGV. Lists travel joined by ','.

// luaTrackerPrelude is shared by the scripts that touch many fields: they call HMGET
// and HSET in slices, because Lua's unpack fails beyond a few thousand values.
const luaTrackerPrelude = `
local CHUNK = 1000
local function hmget(key, fields)
  local out = {}
  for i = 1, #fields, CHUNK do
    local part = redis.call('HMGET', key, unpack(fields, i, math.min(i + CHUNK - 1, #fields)))
    for j = 1, #part do out[#out + 1] = part[j] end
  end
  return out
end
-- hset sets the field-value pairs of the flat table kv (CHUNK is even: pairs stay whole).
local function hset(key, kv)
  for i = 1, #kv, CHUNK do
    redis.call('HSET', key, unpack(kv, i, math.min(i + CHUNK - 1, #kv)))
  end
end
`

// luaTrackerClaim is Claim. KEYS: st, r, n, ws, wd, hb, then per recipient their fl
// key. ARGV: now, until, the tracker's id, its heartbeat deadline, the campaign, then
// per recipient the subscriber and their lists. Returns 3 (Paused) or 4 (Cancelled)
// when the campaign is not running, else one byte per recipient: 's' send (claimed
// until until, and marked as being sent in their fl), 'k' skip (recorded), 'd' done,
// 'b' busy (claimed by a live tracker until a later time).
const luaTrackerClaim = luaTrackerPrelude + `
local st = redis.call('GET', KEYS[1])
if st ~= 'running' then
  if st == 'paused' then return 3 end
  return 4
end
local R, N, WS, WD, HB = KEYS[2], KEYS[3], KEYS[4], KEYS[5], KEYS[6]
local now, till, campaign = tonumber(ARGV[1]), tonumber(ARGV[2]), ARGV[5]
local claim = 'p' .. ARGV[2] .. ':' .. ARGV[3]
redis.call('ZADD', HB, ARGV[4], ARGV[3])
local ttl = math.max(till - now, 0) + 60000

-- live tells whether claim value v ('p<deadline>' or 'p<deadline>:<tracker>') still
-- holds: its deadline is ahead and its tracker's heartbeat has not expired.
local function live(v)
  local deadline, holder = string.match(v, '^p(%d+):?(.*)$')
  if not deadline or tonumber(deadline) <= now then return false end
  if holder == '' then return true end
  local beat = redis.call('ZSCORE', HB, holder)
  return beat ~= false and beat ~= nil and tonumber(beat) > now
end

-- withdrawn tells whether every list of want is in have (both comma-separated); a
-- recipient with no list left has nothing they may receive.
local function withdrawn(want, have)
  if want == '' then return true end
  if not have then return false end
  have = ',' .. have .. ','
  for l in string.gmatch(want, '[^,]+') do
    if not string.find(have, ',' .. l .. ',', 1, true) then return false end
  end
  return true
end

local subs = {}
for i = 6, #ARGV, 2 do subs[#subs + 1] = ARGV[i] end
local old = hmget(R, subs)
local out, cand, seen = {}, {}, {}
for j, sub in ipairs(subs) do
  local v = old[j]
  -- A result, or a live claim (a corrupt one has expired).
  if seen[sub] or (v and string.sub(v, 1, 1) ~= 'p') then
    out[j] = 'd'
  elseif v and live(v) then
    out[j] = 'b'
  else
    cand[#cand + 1] = j
  end
  seen[sub] = true
end
if #cand > 0 then
  local csubs = {}
  for k, j in ipairs(cand) do csubs[k] = subs[j] end
  local whole, lists = hmget(WS, csubs), hmget(WD, csubs)
  local set, skip = {}, 0
  for k, j in ipairs(cand) do
    set[#set + 1] = csubs[k]
    if whole[k] or withdrawn(ARGV[2 * j + 5], lists[k]) then
      out[j] = 'k'
      set[#set + 1] = 'k'
      skip = skip + 1
    else
      out[j] = 's'
      set[#set + 1] = claim
      local fl = KEYS[6 + j]
      redis.call('ZADD', fl, till, campaign)
      -- A new key takes the TTL; one with a TTL keeps the longer of the two.
      if redis.call('PEXPIRE', fl, ttl, 'NX') == 0 then redis.call('PEXPIRE', fl, ttl, 'GT') end
    end
  end
  hset(R, set)
  if skip > 0 then redis.call('HINCRBY', N, 'skipped', skip) end
end
return table.concat(out)
`

// luaTrackerRecord is Record. KEYS: r, n, hb, bq, d, then per outcome the
// subscriber's fl. ARGV: the campaign, the tracker's id, its heartbeat deadline,
// MaxDomains, then per outcome the subscriber, the result ('s', 'f', 'b' or 'k', or
// '0' to release a claim), for 'b' the hard bounce to queue on bq (else empty), and
// the recipient's domain. A result replacing a result moves the count from the old
// counter to the new one ('b' counts as failed and bounced), in the domain's counters
// too; a 'b' replacing a 'b' is queued once. The last outcome of a subscriber listed
// twice wins. A release never removes a result. Every outcome ends the subscriber's
// send under way for the campaign.
const luaTrackerRecord = luaTrackerPrelude + `
local R, N, BQ, D = KEYS[1], KEYS[2], KEYS[4], KEYS[5]
local maxd = tonumber(ARGV[4])
redis.call('ZADD', KEYS[3], ARGV[3], ARGV[2])
local names = {s = {'sent'}, f = {'failed'}, k = {'skipped'}, b = {'failed', 'bounced'}}
local dnames = {s = 's:', b = 'b:'}
-- bucket is the domain's counters, made for the first maxd domains, else 'other'.
local function bucket(dom)
  if dom == '' or dom == 'other' then return 'other' end
  if redis.call('HEXISTS', D, 's:' .. dom) == 1 then return dom end
  local n = tonumber(redis.call('HGET', D, '#') or '0')
  if n >= maxd then return 'other' end
  redis.call('HSET', D, '#', n + 1, 's:' .. dom, 0, 'b:' .. dom, 0)
  return dom
end
local subs = {}
for i = 5, #ARGV, 4 do subs[#subs + 1] = ARGV[i] end
for j = 1, #subs do redis.call('ZREM', KEYS[5 + j], ARGV[1]) end
local old = hmget(R, subs)
local cur, delta, set, release = {}, {sent = 0, failed = 0, skipped = 0, bounced = 0}, {}, {}
local ddelta = {}
for j, sub in ipairs(subs) do
  local prev, new, entry, dom = cur[sub], ARGV[4 * j + 2], ARGV[4 * j + 3], ARGV[4 * j + 4]
  if prev == nil then prev = old[j] end
  if new == '0' then
    if prev and not names[prev] then release[sub] = true end
  else
    if prev and names[prev] then
      for _, c in ipairs(names[prev]) do delta[c] = delta[c] - 1 end
    end
    for _, c in ipairs(names[new]) do delta[c] = delta[c] + 1 end
    if prev ~= new and (dnames[new] or (prev and dnames[prev])) then
      local b = bucket(dom)
      if prev and dnames[prev] then ddelta[dnames[prev] .. b] = (ddelta[dnames[prev] .. b] or 0) - 1 end
      if dnames[new] then ddelta[dnames[new] .. b] = (ddelta[dnames[new] .. b] or 0) + 1 end
    end
    if new == 'b' and prev ~= 'b' then redis.call('RPUSH', BQ, entry) end
    cur[sub] = new
    release[sub] = nil
    set[#set + 1] = sub
    set[#set + 1] = new
  end
end
for sub in pairs(release) do redis.call('HDEL', R, sub) end
if #set > 0 then hset(R, set) end
for name, d in pairs(delta) do
  if d ~= 0 then redis.call('HINCRBY', N, name, d) end
end
for f, d in pairs(ddelta) do
  if d ~= 0 then redis.call('HINCRBY', D, f, d) end
end
return 0
`

// luaTrackerWithdraw adds lists to a subscriber's withdrawn set. KEYS: wd. ARGV:
// subscriber, lists….
const luaTrackerWithdraw = `
local have = redis.call('HGET', KEYS[1], ARGV[1])
local set, order = {}, {}
if have then
  for l in string.gmatch(have, '[^,]+') do
    if not set[l] then set[l] = true; order[#order + 1] = l end
  end
end
local n = #order
for i = 2, #ARGV do
  if not set[ARGV[i]] then set[ARGV[i]] = true; order[#order + 1] = ARGV[i] end
end
if #order > n then redis.call('HSET', KEYS[1], ARGV[1], table.concat(order, ',')) end
return 0
`

// luaTrackerRestore removes lists from a subscriber's withdrawn set, and the field
// once the set is empty. KEYS: wd. ARGV: subscriber, lists….
const luaTrackerRestore = `
local have = redis.call('HGET', KEYS[1], ARGV[1])
if not have then return 0 end
local drop = {}
for i = 2, #ARGV do drop[ARGV[i]] = true end
local keep = {}
for l in string.gmatch(have, '[^,]+') do
  if not drop[l] then keep[#keep + 1] = l end
end
if #keep == 0 then
  redis.call('HDEL', KEYS[1], ARGV[1])
else
  redis.call('HSET', KEYS[1], ARGV[1], table.concat(keep, ','))
end
return 0
`
