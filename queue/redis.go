package queue

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"
)

// RedisOptions configures a Redis queue. Zero fields take the documented defaults.
type RedisOptions struct {
	// Prefix starts every key the queue uses, e.g. "consentmail:". Instances with the
	// same Prefix and Group on the same server form one queue.
	Prefix string
	// Consumer names this instance in the consumer group (default
	// "hostname-pid-random"). It labels pending entries for people inspecting the
	// group; correctness does not depend on it, since leases carry their own tokens.
	Consumer string
	// Group is the consumer group every worker joins (default "workers").
	Group string
	// Visibility is how long a reservation hides a message (default 1 minute).
	Visibility time.Duration
	// MaxAttempts is the number of deliveries ending in Retry after which the message
	// becomes a dead letter (default 8).
	MaxAttempts int
	// BackoffBase and BackoffMax shape the delay after a Retry; see Backoff
	// (defaults 5 seconds and 1 hour).
	BackoffBase time.Duration
	BackoffMax  time.Duration
	// PollInterval bounds how long a blocked Reserve waits before it re-checks for
	// messages that became due and leases that expired (default 1 second). Enqueues,
	// from this process or any other, wake it at once.
	PollInterval time.Duration
	// Now is the queue's clock (default time.Now): NotBefore, backoff and lease
	// deadlines are all measured with it, never with the Redis server's clock. Every
	// process sharing a queue must use the same (or a well-synchronised) clock.
	Now func() time.Time
}

func (o *RedisOptions) fill() error {
	if err := fillShared("RedisOptions", &o.Visibility, &o.MaxAttempts, &o.BackoffBase, &o.BackoffMax, &o.PollInterval, &o.Now); err != nil {
		return err
	}
	if o.Consumer == "" {
		host, _ := os.Hostname()
		if host == "" {
			host = "worker"
		}
		o.Consumer = fmt.Sprintf("%s-%d-%08x", host, os.Getpid(), rand.Uint32())
	}
	if o.Group == "" {
		o.Group = "workers"
	}
	return nil
}

const (
	// enqueueChunk bounds the messages one Enqueue script adds, so that a big batch
	// does not stall the server (scripts run alone).
	enqueueChunk = 1000
	// watchBlock is how long the watcher's XREAD blocks: the most it lingers after
	// Close or after the last waiter left.
	watchBlock = time.Second
	// keysPerLane is the number of keys of each lane in Redis.keys.
	keysPerLane = 5
)

// Redis is the Queue on Redis Streams, shared by any number of worker processes. It
// is safe for concurrent use.
//
// Each lane is a stream read through one consumer group; Reserve serves the High
// lane's stream before the Normal one's. Delayed messages (a future NotBefore, or a
// Retry's backoff) wait in a sorted set scored by due time and are moved to the end of
// their lane's stream once due. A reservation is a lease recorded next to the
// stream's pending entries: a token and a deadline measured with the queue's clock
// (RedisOptions.Now). A lease whose deadline has passed is taken over (XCLAIM) by the
// next Reserve of any instance, and the new token makes the old receipt stale. Every
// state change is one Lua script, so concurrent instances never deliver a message
// twice within its visibility timeout, nor settle a message through a stale receipt.
//
// Everything lives in Redis: after a crash, a new instance with the same Prefix sees
// every unacknowledged message again; those that were reserved come back when their
// consumer's heartbeat expires (see Beat), or at the latest when their lease does.
//
// Keys, all starting with RedisOptions.Prefix followed by "{queue}:" (a hash tag, so
// that on Redis Cluster they share a slot as the scripts require):
//
//	high, normal                          lane streams (consumer group RedisOptions.Group)
//	high:schedule, normal:schedule        sorted sets of delayed messages by due time (µs)
//	high:delayed, normal:delayed          hashes of the delayed messages themselves
//	high:leases, normal:leases            hashes of entry ID → lease token
//	high:deadlines, normal:deadlines      sorted sets of entry ID by lease deadline (µs)
//	dead                                  stream of dead letters, oldest first
//	seq, token                            counters for message IDs and lease tokens
//	hb                                    sorted set of consumer → heartbeat deadline (µs)
//
// # Caveats
//
// Tested with Redis 7.0; the scripts use cmsgpack, which Redis and Valkey bundle.
// Durability is Redis's: configure AOF (appendonly yes) on a server that must not
// lose queued mail in a crash. Enqueue adds a large batch in chunks of 1000 messages,
// each atomic, not the batch as a whole. Each instance joins the group under its own
// consumer name; names of exited processes stay listed by XINFO CONSUMERS until
// removed with XGROUP DELCONSUMER.
type Redis struct {
	client redis.UniversalClient
	opts   RedisOptions
	// keys are the KEYS of every script: per lane stream, schedule, delayed, leases,
	// deadlines; then dead, seq, token.
	keys                           []string
	enqueue, reserve, ack, settler *redis.Script
	rewriteOne, delayed            *redis.Script

	closeOnce sync.Once
	closed    chan struct{}
	kick      chan struct{} // tells a parked watcher that someone waits

	// mu guards the fields below.
	mu        sync.Mutex
	wake      chan struct{} // closed by the watcher when a lane stream grows
	handedOut bool          // wake was returned by wakeChan since it was made
	waiters   int           // Reserve calls waiting for wake
	watching  bool          // the watcher goroutine runs
}

var _ Queue = (*Redis)(nil)

// NewRedis returns a queue stored in Redis through client under opts.Prefix, creating
// the lane streams and their consumer group if needed. client is opened and closed by
// the caller, e.g. from CONSENTMAIL_REDIS_URL with redis.ParseURL and redis.NewClient.
func NewRedis(client redis.UniversalClient, opts RedisOptions) (*Redis, error) {
	if client == nil {
		return nil, errors.New("queue: nil Redis client")
	}
	if err := opts.fill(); err != nil {
		return nil, err
	}
	r := &Redis{
		client:     client,
		opts:       opts,
		keys:       redisKeys(opts.Prefix),
		enqueue:    redis.NewScript(luaEnqueue),
		reserve:    redis.NewScript(luaReserve),
		ack:        redis.NewScript(luaAck),
		settler:    redis.NewScript(luaSettle),
		rewriteOne: redis.NewScript(luaRewriteOne),
		delayed:    redis.NewScript(luaDelayed),
		closed:     make(chan struct{}),
		kick:       make(chan struct{}, 1),
		wake:       make(chan struct{}),
	}
	ctx := context.Background()
	for lane := range lanes {
		err := client.XGroupCreateMkStream(ctx, r.stream(lane), opts.Group, "0").Err()
		if err != nil && !redis.HasErrorPrefix(err, "BUSYGROUP") {
			return nil, fmt.Errorf("queue: create consumer group %s on %s: %w", opts.Group, r.stream(lane), err)
		}
	}
	return r, nil
}

func redisKeys(prefix string) []string {
	base := prefix + "{queue}:"
	keys := make([]string, 0, lanes*keysPerLane+4)
	for _, lane := range []string{"high", "normal"} {
		keys = append(keys, base+lane, base+lane+":schedule", base+lane+":delayed",
			base+lane+":leases", base+lane+":deadlines")
	}
	return append(keys, base+"dead", base+"seq", base+"token", base+"hb")
}

func (r *Redis) stream(lane int) string    { return r.keys[lane*keysPerLane] }
func (r *Redis) schedule(lane int) string  { return r.keys[lane*keysPerLane+1] }
func (r *Redis) leaseHash(lane int) string { return r.keys[lane*keysPerLane+3] }
func (r *Redis) deadStream() string        { return r.keys[lanes*keysPerLane] }
func (r *Redis) heartbeats() string        { return r.keys[lanes*keysPerLane+3] }

// A consumer's heartbeat lasts HeartbeatTTL from its last renewal (each Reserve, and
// Beat every heartbeatEvery). Once it has expired, the next Reserve of any instance
// takes over the consumer's leases at once, whatever their deadlines: a process that
// died mid-campaign holds its messages for seconds, not for the visibility timeout.
// A live process never stalls that long; if one did, its deliveries could be made
// twice, as after an expired lease.
const (
	HeartbeatTTL   = 5 * time.Second
	heartbeatEvery = time.Second
)

// Beat keeps this instance's heartbeat alive until ctx ends, then ends it so that
// whatever it still holds is taken over at once. Run it in a process that reserves,
// for as long as its deliveries may still be in hand (until its Consumer's Run has
// returned): Reserve alone renews the heartbeat only while the process is idle.
func (r *Redis) Beat(ctx context.Context) error {
	tick := time.NewTicker(heartbeatEvery)
	defer tick.Stop()
	for {
		// An error (Redis away) is not reported: the next beat tries again.
		deadline := float64(r.opts.Now().Add(HeartbeatTTL).UnixMicro())
		r.client.ZAdd(ctx, r.heartbeats(), redis.Z{Score: deadline, Member: r.opts.Consumer})
		select {
		case <-ctx.Done():
			end, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Second)
			r.client.ZRem(end, r.heartbeats(), r.opts.Consumer)
			cancel()
			return nil
		case <-tick.C:
		}
	}
}

// Close makes blocked and future Reserve calls return ErrClosed. Enqueue, Ack, Retry,
// Fail and the read methods keep working, so deliveries in progress can be settled
// during a graceful shutdown. Leases held stay in Redis until settled or expired.
// Close does not close the client.
func (r *Redis) Close() error {
	r.closeOnce.Do(func() { close(r.closed) })
	return nil
}

// Enqueue stores msgs and returns once Redis has them (durable as far as the server's
// persistence goes). Messages with a NotBefore after now wait in the lane's schedule.
// A batch is added in chunks of 1000 messages, each atomically.
func (r *Redis) Enqueue(ctx context.Context, msgs ...Message) error {
	if len(msgs) == 0 {
		return nil
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	if err := validate(msgs); err != nil {
		return err
	}
	now := r.opts.Now()
	for start := 0; start < len(msgs); start += enqueueChunk {
		chunk := msgs[start:min(start+enqueueChunk, len(msgs))]
		args := make([]any, 0, 1+6*len(chunk))
		args = append(args, now.UnixMicro())
		for _, m := range chunk {
			due := ""
			if m.NotBefore.After(now) {
				due = strconv.FormatInt(ceilMicros(m.NotBefore), 10)
			}
			args = append(args, m.Priority.lane(), due, m.ID, m.Kind, m.Body, formatNotBefore(m.NotBefore))
		}
		if err := r.enqueue.Run(ctx, r.client, r.keys, args...).Err(); err != nil {
			return fmt.Errorf("queue: enqueue: %w", err)
		}
	}
	return nil
}

// Reserve returns up to max ready messages, High lane first (and within a lane,
// expired leases before new messages), and leases them for the visibility timeout.
// With none ready it blocks until a lane stream grows (an Enqueue anywhere), a delayed
// message falls due or a lease expires (both noticed within PollInterval), ctx ends
// (ctx.Err()) or the queue is closed (ErrClosed).
func (r *Redis) Reserve(ctx context.Context, max int) ([]Delivery, error) {
	return reserveLoop(ctx, r.closed, func() ([]Delivery, <-chan struct{}, time.Duration, error) {
		// Taken before looking, so that growth after the look closes it.
		wake := r.wakeChan()
		if max < 1 {
			max = 1
		}
		ds, wait, err := r.tryReserve(ctx, max)
		return ds, wake, wait, err
	}, func() func() {
		r.startWaiting()
		return r.stopWaiting
	})
}

// tryReserve leases what is ready now. When nothing is, it returns how long to wait
// for the clock at most.
func (r *Redis) tryReserve(ctx context.Context, limit int) ([]Delivery, time.Duration, error) {
	now := r.opts.Now().UnixMicro()
	res, err := r.reserve.Run(ctx, r.client, r.keys,
		r.opts.Group, r.opts.Consumer, now, r.opts.Visibility.Microseconds(), limit, now+HeartbeatTTL.Microseconds()).Slice()
	if err != nil {
		return nil, 0, fmt.Errorf("queue: reserve: %w", err)
	}
	if len(res) != 2 {
		return nil, 0, fmt.Errorf("queue: reserve: unexpected reply %v", res)
	}
	if found, _ := res[0].(int64); found == 0 {
		wait := r.opts.PollInterval
		if next, ok := res[1].(int64); ok && next >= 0 {
			wait = min(wait, time.Duration(next-now)*time.Microsecond)
		}
		return nil, max(wait, time.Millisecond), nil
	}
	items, _ := res[1].([]any)
	ds := make([]Delivery, 0, len(items))
	for _, it := range items {
		d, err := parseReserved(it)
		if err != nil {
			// The leases are taken; they will expire and the messages come back.
			return nil, 0, fmt.Errorf("queue: reserve: %w", err)
		}
		ds = append(ds, d)
	}
	return ds, 0, nil
}

// parseReserved reads one {lane, entry id, token, fields} of luaReserve's reply.
func parseReserved(it any) (Delivery, error) {
	a, ok := it.([]any)
	if !ok || len(a) != 4 {
		return Delivery{}, fmt.Errorf("unexpected entry %v", it)
	}
	lane, ok1 := a[0].(int64)
	id, ok2 := a[1].(string)
	tok, ok3 := a[2].(int64)
	kv, ok4 := a[3].([]any)
	if !ok1 || !ok2 || !ok3 || !ok4 || lane < 0 || lane >= lanes {
		return Delivery{}, fmt.Errorf("unexpected entry %v", it)
	}
	fields := make(map[string]any, len(kv)/2)
	for i := 0; i+1 < len(kv); i += 2 {
		k, _ := kv[i].(string)
		fields[k] = kv[i+1]
	}
	m, err := redisMessage(fields)
	if err != nil {
		return Delivery{}, fmt.Errorf("entry %s: %w", id, err)
	}
	m.Priority = priorityOf(int(lane))
	return Delivery{Message: m, Receipt: redisReceipt{int(lane), id, strconv.FormatInt(tok, 10)}.String()}, nil
}

// redisMessage decodes the fields of a stream entry.
func redisMessage(fields map[string]any) (Message, error) {
	str := func(k string) string { s, _ := fields[k].(string); return s }
	m := Message{ID: str("id"), Kind: str("kind"), LastError: str("e")}
	if b := str("body"); b != "" {
		m.Body = []byte(b)
	}
	p, err := strconv.Atoi(str("p"))
	if err != nil || p < 0 || p >= lanes {
		return m, errCorrupt
	}
	m.Priority = priorityOf(p)
	if nb := str("nb"); nb != "" {
		n, err := strconv.ParseInt(nb, 10, 64)
		if err != nil {
			return m, errCorrupt
		}
		m.NotBefore = time.Unix(0, n)
	}
	if m.Attempts, err = strconv.Atoi(str("a")); err != nil {
		return m, errCorrupt
	}
	return m, nil
}

func formatNotBefore(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return strconv.FormatInt(t.UnixNano(), 10)
}

// ceilMicros is t in unix microseconds, rounded up: a message is never due early.
func ceilMicros(t time.Time) int64 {
	us := t.UnixMicro()
	if t.Nanosecond()%1000 != 0 {
		us++
	}
	return us
}

// wakeChan returns the channel closed when a lane stream next grows.
func (r *Redis) wakeChan() <-chan struct{} {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.handedOut = true
	return r.wake
}

// startWaiting counts a waiting Reserve and makes sure the watcher watches.
func (r *Redis) startWaiting() {
	r.mu.Lock()
	r.waiters++
	if !r.watching {
		r.watching = true
		go r.watch()
	}
	r.mu.Unlock()
	select {
	case r.kick <- struct{}{}:
	default:
	}
}

func (r *Redis) stopWaiting() {
	r.mu.Lock()
	r.waiters--
	r.mu.Unlock()
}

func (r *Redis) waiting() bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.waiters > 0
}

// broadcast wakes every Reserve that took the current wake channel.
func (r *Redis) broadcast() {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.handedOut {
		close(r.wake)
		r.wake = make(chan struct{})
		r.handedOut = false
	}
}

// watch runs while Reserve calls wait: it blocks on XREAD over both lane streams from
// the last entries it knows and broadcasts when they grow, so that an Enqueue by any
// process wakes the waiters at once while their own select honours ctx and Close.
//
// The invariant: every entry added after a waiter took its wake channel either lies
// beyond ids (the next XREAD returns it) or was counted into ids by a refresh that is
// followed by a broadcast. Stale ids (after parking) only cost a spurious wake.
func (r *Redis) watch() {
	ctx := context.Background()
	ids := [lanes]string{"0-0", "0-0"}
	for {
		select {
		case <-r.closed:
			return
		case <-r.kick:
		}
		for r.waiting() {
			res, err := r.client.XRead(ctx, &redis.XReadArgs{
				Streams: []string{r.stream(0), r.stream(1), ids[0], ids[1]},
				Count:   1,
				Block:   watchBlock,
			}).Result()
			select {
			case <-r.closed:
				return
			default:
			}
			if errors.Is(err, redis.Nil) {
				continue
			}
			if err != nil {
				// Let the waiters meet the error in their own Reserve, then try again.
				r.broadcast()
				t := time.NewTimer(min(r.opts.PollInterval, time.Second))
				select {
				case <-r.closed:
					t.Stop()
					return
				case <-t.C:
				}
				continue
			}
			for _, s := range res {
				lane := 0
				if s.Stream == r.stream(1) {
					lane = 1
				}
				if n := len(s.Messages); n > 0 {
					ids[lane] = s.Messages[n-1].ID
				}
				// Jump to the newest entry, so a backlog costs one wake, not one each.
				if last, err := r.client.XRevRangeN(ctx, s.Stream, "+", "-", 1).Result(); err == nil && len(last) == 1 {
					ids[lane] = last[0].ID
				}
			}
			r.broadcast()
		}
	}
}

// redisReceipt identifies a lease: lane, stream entry ID and lease token. Its string
// form is "lane:entry:token".
type redisReceipt struct {
	lane  int
	entry string
	token string
}

func (rc redisReceipt) String() string {
	return strconv.Itoa(rc.lane) + ":" + rc.entry + ":" + rc.token
}

func parseRedisReceipt(s string) (redisReceipt, error) {
	parts := strings.Split(s, ":")
	if len(parts) != 3 || (parts[0] != "0" && parts[0] != "1") || parts[1] == "" {
		return redisReceipt{}, fmt.Errorf("queue: malformed receipt %q", s)
	}
	if _, err := strconv.ParseUint(parts[2], 10, 64); err != nil {
		return redisReceipt{}, fmt.Errorf("queue: malformed receipt %q", s)
	}
	return redisReceipt{lane: int(parts[0][0] - '0'), entry: parts[1], token: parts[2]}, nil
}

// Ack deletes the delivered messages. Deliveries whose receipt is stale are ignored;
// a malformed receipt is an error (and nothing is acknowledged).
func (r *Redis) Ack(ctx context.Context, ds ...Delivery) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if len(ds) == 0 {
		return nil
	}
	args := make([]any, 0, 1+3*len(ds))
	args = append(args, r.opts.Group)
	for _, d := range ds {
		rc, err := parseRedisReceipt(d.Receipt)
		if err != nil {
			return err
		}
		args = append(args, rc.lane, rc.entry, rc.token)
	}
	if err := r.ack.Run(ctx, r.client, r.keys, args...).Err(); err != nil {
		return fmt.Errorf("queue: ack: %w", err)
	}
	return nil
}

// Retry re-queues the message with NotBefore = now + Backoff(Attempts, BackoffBase,
// BackoffMax), or makes it a dead letter when Attempts reaches MaxAttempts. Attempts
// is the stored count, not the Delivery's. A stale receipt returns ErrStaleReceipt.
func (r *Redis) Retry(ctx context.Context, d Delivery, reason string) error {
	return r.settle(ctx, "retry", d, reason)
}

// Fail makes the message a dead letter now. A stale receipt returns ErrStaleReceipt.
func (r *Redis) Fail(ctx context.Context, d Delivery, reason string) error {
	return r.settle(ctx, "fail", d, reason)
}

func (r *Redis) settle(ctx context.Context, op string, d Delivery, reason string) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	rc, err := parseRedisReceipt(d.Receipt)
	if err != nil {
		return err
	}
	// The backoff is computed here for the attempts the delivery reports; the script
	// refuses and tells the stored count if that differs (a caller changed Attempts).
	attempts := d.Attempts
	for range 3 {
		now := r.opts.Now()
		nb := now.Add(Backoff(attempts+1, r.opts.BackoffBase, r.opts.BackoffMax))
		res, err := r.settler.Run(ctx, r.client, r.keys,
			r.opts.Group, rc.lane, rc.entry, rc.token, reason, op,
			attempts, r.opts.MaxAttempts, ceilMicros(nb), formatNotBefore(nb)).Slice()
		if err != nil {
			return fmt.Errorf("queue: %s %s: %w", op, d.ID, err)
		}
		outcome, _ := res[0].(string)
		switch outcome {
		case "stale":
			return fmt.Errorf("%s %s: %w", op, d.ID, ErrStaleReceipt)
		case "attempts":
			stored, _ := res[1].(int64)
			attempts = int(stored)
		case "retried", "dead":
			return nil
		default:
			return fmt.Errorf("queue: %s %s: unexpected reply %v", op, d.ID, res)
		}
	}
	return fmt.Errorf("queue: %s %s: attempts keep changing", op, d.ID)
}

// Dead lists up to limit dead letters, in the order they died.
func (r *Redis) Dead(ctx context.Context, limit int) ([]Message, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if limit <= 0 {
		return nil, nil
	}
	xs, err := r.client.XRangeN(ctx, r.deadStream(), "-", "+", int64(limit)).Result()
	if err != nil {
		return nil, fmt.Errorf("queue: dead letters: %w", err)
	}
	out := make([]Message, 0, len(xs))
	for _, x := range xs {
		m, err := redisMessage(x.Values)
		if err != nil {
			return nil, fmt.Errorf("queue: dead letter %s: %w", x.ID, err)
		}
		out = append(out, m)
	}
	return out, nil
}

// Stats counts messages by state with seven O(1) reads in one MULTI, so the counts
// are a consistent snapshot.
func (r *Redis) Stats(ctx context.Context) (Stats, error) {
	if err := ctx.Err(); err != nil {
		return Stats{}, err
	}
	var (
		inStream, leased, delayed [lanes]*redis.IntCmd
		dead                      *redis.IntCmd
	)
	_, err := r.client.TxPipelined(ctx, func(p redis.Pipeliner) error {
		for lane := range lanes {
			inStream[lane] = p.XLen(ctx, r.stream(lane))
			leased[lane] = p.HLen(ctx, r.leaseHash(lane))
			delayed[lane] = p.ZCard(ctx, r.schedule(lane))
		}
		dead = p.XLen(ctx, r.deadStream())
		return nil
	})
	if err != nil {
		return Stats{}, fmt.Errorf("queue: stats: %w", err)
	}
	var s Stats
	for lane := range lanes {
		n := max(inStream[lane].Val()-leased[lane].Val(), 0) + delayed[lane].Val()
		s.Ready += n
		s.Inflight += leased[lane].Val()
		if lane == High.lane() {
			s.High = n
		}
	}
	s.Dead = dead.Val()
	return s, nil
}

// Ping reports whether the Redis server answers.
func (r *Redis) Ping(ctx context.Context) error {
	if err := r.client.Ping(ctx).Err(); err != nil {
		return fmt.Errorf("queue: ping redis: %w", err)
	}
	return nil
}
