package queue_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"consentmail/queue"
	"consentmail/queue/queuetest"
)

func redisOptions(prefix string, clock *queuetest.Clock, o queuetest.Options) queue.RedisOptions {
	return queue.RedisOptions{
		Prefix:       prefix,
		Visibility:   o.Visibility,
		MaxAttempts:  o.MaxAttempts,
		BackoffBase:  o.BackoffBase,
		BackoffMax:   o.BackoffMax,
		PollInterval: o.PollInterval,
		Now:          clock.Now,
	}
}

// newRedisQueue returns a Redis queue on client with opts, closed at cleanup.
func newRedisQueue(tb testing.TB, client redis.UniversalClient, opts queue.RedisOptions) *queue.Redis {
	tb.Helper()
	q, err := queue.NewRedis(client, opts)
	if err != nil {
		tb.Fatalf("NewRedis: %v", err)
	}
	tb.Cleanup(func() { q.Close() })
	return q
}

func TestRedisContract(t *testing.T) {
	type store struct {
		client *redis.Client
		opts   queue.RedisOptions
	}
	var (
		mu     sync.Mutex
		stores = make(map[queue.Queue]store)
	)
	queuetest.Run(t, queuetest.Harness{
		New: func(t *testing.T, clock *queuetest.Clock, opts queuetest.Options) queue.Queue {
			s := store{client: newRedisClient(t, 0), opts: redisOptions(newRedisPrefix(t), clock, opts)}
			q := newRedisQueue(t, s.client, s.opts)
			mu.Lock()
			defer mu.Unlock()
			stores[q] = s
			return q
		},
		// A restart is a new instance, under a new consumer name, over the same keys;
		// the old one stops reserving and its leases are left to expire.
		Reopen: func(t *testing.T, q queue.Queue) queue.Queue {
			mu.Lock()
			defer mu.Unlock()
			s := stores[q]
			delete(stores, q)
			q.(*queue.Redis).Close()
			nq := newRedisQueue(t, s.client, s.opts)
			stores[nq] = s
			return nq
		},
	})
}

func newTestRedis(t *testing.T, configure func(*queue.RedisOptions)) (*queue.Redis, *queuetest.Clock) {
	t.Helper()
	clock := queuetest.NewClock(epoch)
	opts := queue.RedisOptions{Prefix: newRedisPrefix(t), PollInterval: 10 * time.Millisecond, Now: clock.Now}
	if configure != nil {
		configure(&opts)
	}
	return newRedisQueue(t, newRedisClient(t, 0), opts), clock
}

func enqueueBodies(t *testing.T, q queue.Queue, p queue.Priority, bodies ...string) {
	t.Helper()
	var msgs []queue.Message
	for _, b := range bodies {
		msgs = append(msgs, queue.Message{Kind: "test", Priority: p, Body: []byte(b)})
	}
	if err := q.Enqueue(context.Background(), msgs...); err != nil {
		t.Fatalf("Enqueue: %v", err)
	}
}

func wantStats(t *testing.T, q queue.Queue, want queue.Stats) {
	t.Helper()
	if got, err := q.Stats(context.Background()); err != nil || got != want {
		t.Fatalf("Stats: got %+v, %v, want %+v", got, err, want)
	}
}

// Two instances with the same prefix are one queue: they split its messages, in
// order, without handing any out twice.
func TestRedisTwoConsumersShare(t *testing.T) {
	clock := queuetest.NewClock(epoch)
	prefix := newRedisPrefix(t)
	instance := func(name string) *queue.Redis {
		return newRedisQueue(t, newRedisClient(t, 0), queue.RedisOptions{
			Prefix: prefix, Consumer: name, PollInterval: time.Hour, Now: clock.Now,
		})
	}
	a, b, producer := instance("a"), instance("b"), instance("producer")
	var want []string
	for i := range 12 {
		want = append(want, fmt.Sprintf("m%02d", i))
	}
	enqueueBodies(t, producer, queue.Normal, want...)

	var got []string
	held := map[*queue.Redis][]queue.Delivery{}
	for i := 0; len(got) < len(want); i++ {
		q := []*queue.Redis{a, b}[i%2]
		ds, err := reserveWithin(t, q, 10*time.Second, 3)
		if err != nil {
			t.Fatalf("Reserve: %v", err)
		}
		got = append(got, bodies(ds)...)
		held[q] = append(held[q], ds...)
	}
	if !slices.Equal(got, want) {
		t.Fatalf("a and b reserved, in turn, %q, want %q", got, want)
	}
	wantStats(t, producer, queue.Stats{Inflight: 12})
	if ds, err := reserveWithin(t, a, 50*time.Millisecond, 10); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Reserve with everything held: got %q, %v, want %v", bodies(ds), err, context.DeadlineExceeded)
	}
	// Each settles its own, through its own instance.
	for q, ds := range held {
		if err := q.Ack(context.Background(), ds...); err != nil {
			t.Fatalf("Ack: %v", err)
		}
	}
	wantStats(t, producer, queue.Stats{})

	// Both blocked in Reserve are woken by a third process's Enqueues, and between
	// them receive each message once.
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	const total = 200
	var (
		mu    sync.Mutex
		count = make(map[string]int)
		by    = make(map[string]int)
		wg    sync.WaitGroup
	)
	for _, q := range []*queue.Redis{a, b} {
		wg.Go(func() {
			for {
				ds, err := q.Reserve(ctx, 4)
				if err != nil {
					if ctx.Err() == nil {
						t.Errorf("Reserve: %v", err)
					}
					return
				}
				if err := q.Ack(context.Background(), ds...); err != nil {
					t.Errorf("Ack: %v", err)
					return
				}
				mu.Lock()
				for _, d := range ds {
					count[string(d.Body)]++
					by[fmt.Sprintf("%p", q)]++
				}
				if len(count) == total {
					cancel()
				}
				mu.Unlock()
			}
		})
	}
	for i := range total / 10 {
		var batch []string
		for j := range 10 {
			batch = append(batch, fmt.Sprintf("c%03d", i*10+j))
		}
		enqueueBodies(t, producer, queue.Priority(i%2), batch...)
	}
	wg.Wait()
	if len(count) != total {
		t.Fatalf("delivered %d distinct messages, want %d", len(count), total)
	}
	for body, n := range count {
		if n != 1 {
			t.Errorf("%s delivered %d times, want once", body, n)
		}
	}
	wantStats(t, producer, queue.Stats{})
}

// A consumer that reserved and never settles, while it stays alive (its heartbeat
// renewed), loses the message to another once the visibility timeout has passed; its
// receipt is then stale.
func TestRedisDeadConsumerRedelivered(t *testing.T) {
	clock := queuetest.NewClock(epoch)
	prefix := newRedisPrefix(t)
	const visibility = time.Minute
	instance := func(name string) *queue.Redis {
		return newRedisQueue(t, newRedisClient(t, 0), queue.RedisOptions{
			Prefix: prefix, Consumer: name, Visibility: visibility,
			PollInterval: 10 * time.Millisecond, Now: clock.Now,
		})
	}
	dying, survivor := instance("dying"), instance("survivor")
	enqueueBodies(t, dying, queue.High, "confirm")
	lost, err := reserveWithin(t, dying, 10*time.Second, 1)
	if err != nil {
		t.Fatalf("Reserve: %v", err)
	}
	// It never settles, but stays alive: its Reserve calls renew its heartbeat.
	clock.Advance(visibility - time.Second)
	if ds, err := reserveWithin(t, dying, 20*time.Millisecond, 1); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Reserve by the slow consumer: got %q, %v, want %v", bodies(ds), err, context.DeadlineExceeded)
	}
	dying.Close()
	if ds, err := reserveWithin(t, survivor, 50*time.Millisecond, 1); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Reserve within the lease: got %q, %v, want %v", bodies(ds), err, context.DeadlineExceeded)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	got := make(chan []queue.Delivery, 1)
	go func() {
		ds, err := survivor.Reserve(ctx, 1)
		if err != nil {
			t.Errorf("blocked Reserve: %v", err)
		}
		got <- ds
	}()
	clock.Advance(2 * time.Second)
	ds := <-got
	if len(ds) != 1 || ds[0].ID != lost[0].ID || string(ds[0].Body) != "confirm" || ds[0].Receipt == lost[0].Receipt {
		t.Fatalf("survivor got %+v, want %s under a new receipt", ds, lost[0].ID)
	}
	if err := dying.Retry(context.Background(), lost[0], "too late"); !errors.Is(err, queue.ErrStaleReceipt) {
		t.Fatalf("Retry by the dead consumer: got %v, want %v", err, queue.ErrStaleReceipt)
	}
	if err := dying.Ack(context.Background(), lost[0]); err != nil {
		t.Fatalf("Ack by the dead consumer: %v", err)
	}
	wantStats(t, survivor, queue.Stats{Inflight: 1})
	if err := survivor.Ack(context.Background(), ds...); err != nil {
		t.Fatalf("Ack: %v", err)
	}
	wantStats(t, survivor, queue.Stats{})
}

// A consumer whose heartbeat has expired (its process died) loses its leases to the
// next Reserve of another consumer at once, long before the visibility timeout; its
// receipts are then stale.
func TestRedisDeadConsumerTakenOverAfterHeartbeat(t *testing.T) {
	clock := queuetest.NewClock(epoch)
	prefix := newRedisPrefix(t)
	instance := func(name string) *queue.Redis {
		return newRedisQueue(t, newRedisClient(t, 0), queue.RedisOptions{
			Prefix: prefix, Consumer: name, Visibility: time.Hour,
			PollInterval: 10 * time.Millisecond, Now: clock.Now,
		})
	}
	dying, survivor := instance("dying"), instance("survivor")
	enqueueBodies(t, dying, queue.Normal, "job")
	lost, err := reserveWithin(t, dying, 10*time.Second, 1)
	if err != nil {
		t.Fatalf("Reserve: %v", err)
	}
	dying.Close() // killed: no heartbeat any more

	clock.Advance(queue.HeartbeatTTL - time.Millisecond)
	if ds, err := reserveWithin(t, survivor, 50*time.Millisecond, 1); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Reserve while the heartbeat lasts: got %q, %v, want %v", bodies(ds), err, context.DeadlineExceeded)
	}
	clock.Advance(2 * time.Millisecond)
	ds, err := reserveWithin(t, survivor, 10*time.Second, 1)
	if err != nil || len(ds) != 1 || ds[0].ID != lost[0].ID || ds[0].Receipt == lost[0].Receipt {
		t.Fatalf("Reserve after the heartbeat expired: got %+v, %v, want %s under a new receipt", ds, err, lost[0].ID)
	}
	if err := dying.Retry(context.Background(), lost[0], "too late"); !errors.Is(err, queue.ErrStaleReceipt) {
		t.Fatalf("Retry by the dead consumer: got %v, want %v", err, queue.ErrStaleReceipt)
	}
	if err := survivor.Ack(context.Background(), ds...); err != nil {
		t.Fatalf("Ack: %v", err)
	}
	wantStats(t, survivor, queue.Stats{})
}

func TestRedisClose(t *testing.T) {
	q, _ := newTestRedis(t, func(o *queue.RedisOptions) { o.PollInterval = time.Hour })
	ctx := context.Background()
	enqueueBodies(t, q, queue.Normal, "a")
	held, err := q.Reserve(ctx, 1)
	if err != nil {
		t.Fatal(err)
	}
	blocked := make(chan error, 1)
	go func() {
		_, err := q.Reserve(ctx, 1)
		blocked <- err
	}()
	if err := q.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	select {
	case err := <-blocked:
		if !errors.Is(err, queue.ErrClosed) {
			t.Fatalf("blocked Reserve: got %v, want %v", err, queue.ErrClosed)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("blocked Reserve not released by Close")
	}
	if _, err := q.Reserve(ctx, 1); !errors.Is(err, queue.ErrClosed) {
		t.Fatalf("Reserve after Close: got %v, want %v", err, queue.ErrClosed)
	}
	// Deliveries in progress can still be settled during shutdown.
	if err := q.Ack(ctx, held...); err != nil {
		t.Fatalf("Ack after Close: %v", err)
	}
	wantStats(t, q, queue.Stats{})
	if err := q.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
}

// An expired lease is redelivered before younger messages of its lane.
func TestRedisExpiredLeaseComesFirst(t *testing.T) {
	q, clock := newTestRedis(t, func(o *queue.RedisOptions) { o.Visibility = time.Minute })
	ctx := context.Background()
	enqueueBodies(t, q, queue.Normal, "old")
	if _, err := q.Reserve(ctx, 1); err != nil {
		t.Fatal(err)
	}
	clock.Advance(30 * time.Second)
	var later []string
	for i := range 50 {
		later = append(later, fmt.Sprintf("m%02d", i))
	}
	enqueueBodies(t, q, queue.Normal, later...)
	if ds, err := q.Reserve(ctx, 40); err != nil || len(ds) != 40 {
		t.Fatalf("Reserve(40): got %d, %v", len(ds), err)
	}
	clock.Advance(31 * time.Second) // "old" expired, the 40 not
	ds, err := q.Reserve(ctx, 3)
	if got, want := strings.Join(bodies(ds), ","), "old,m40,m41"; err != nil || got != want {
		t.Fatalf("Reserve(3): got %s, %v, want %s", got, err, want)
	}
	wantStats(t, q, queue.Stats{Ready: 8, Inflight: 43})
}

// A wall clock set back must not hide messages enqueued afterwards.
func TestRedisClockSetBack(t *testing.T) {
	q, clock := newTestRedis(t, nil)
	enqueueBodies(t, q, queue.Normal, "a", "b")
	if ds, err := q.Reserve(context.Background(), 2); err != nil || len(ds) != 2 {
		t.Fatalf("Reserve: got %q, %v", bodies(ds), err)
	}
	clock.Advance(-time.Hour)
	enqueueBodies(t, q, queue.Normal, "c")
	ds, err := reserveWithin(t, q, 10*time.Second, 10)
	if err != nil || len(ds) != 1 || string(ds[0].Body) != "c" {
		t.Fatalf("Reserve after the clock was set back: got %q, %v, want [c]", bodies(ds), err)
	}
}

// Deleting the queue's keys (an operator's purge) leaves a working, empty queue.
func TestRedisPurge(t *testing.T) {
	client := newRedisClient(t, 0)
	prefix := newRedisPrefix(t)
	q := newRedisQueue(t, client, queue.RedisOptions{Prefix: prefix, PollInterval: 10 * time.Millisecond})
	enqueueBodies(t, q, queue.High, "gone")
	ctx := context.Background()
	keys, err := client.Keys(ctx, prefix+"*").Result()
	if err != nil || len(keys) == 0 {
		t.Fatalf("KEYS %s*: got %q, %v", prefix, keys, err)
	}
	if err := client.Del(ctx, keys...).Err(); err != nil {
		t.Fatal(err)
	}
	wantStats(t, q, queue.Stats{})
	enqueueBodies(t, q, queue.High, "new")
	ds, err := reserveWithin(t, q, 10*time.Second, 10)
	if err != nil || len(ds) != 1 || string(ds[0].Body) != "new" {
		t.Fatalf("Reserve after purge: got %q, %v, want [new]", bodies(ds), err)
	}
}

// Every key the queue makes starts with its Prefix (checked in a database of its own).
func TestRedisKeysUnderPrefix(t *testing.T) {
	client := newRedisClient(t, 3)
	ctx := context.Background()
	if err := client.FlushDB(ctx).Err(); err != nil {
		t.Fatal(err)
	}
	clock := queuetest.NewClock(epoch)
	q := newRedisQueue(t, client, queue.RedisOptions{Prefix: "consentmail:", Now: clock.Now})
	later := queue.Message{Kind: "test", Body: []byte("later"), NotBefore: clock.Now().Add(time.Hour)}
	if err := q.Enqueue(ctx, later); err != nil {
		t.Fatal(err)
	}
	enqueueBodies(t, q, queue.High, "a", "b", "c")
	ds, err := q.Reserve(ctx, 3)
	if err != nil {
		t.Fatal(err)
	}
	if err := q.Retry(ctx, ds[0], "421"); err != nil {
		t.Fatal(err)
	}
	if err := q.Fail(ctx, ds[1], "550"); err != nil {
		t.Fatal(err)
	}
	keys, err := client.Keys(ctx, "*").Result()
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range keys {
		if !strings.HasPrefix(k, "consentmail:{queue}:") {
			t.Errorf("key %q is not under the prefix", k)
		}
	}
	if len(keys) < 8 {
		t.Errorf("got keys %q, want streams, schedules, leases, dead letters and counters", keys)
	}
}

func TestNewRedis(t *testing.T) {
	client := newRedisClient(t, 0)
	for _, tc := range []struct {
		name    string
		client  redis.UniversalClient
		opts    queue.RedisOptions
		wantErr bool
	}{
		{"defaults", client, queue.RedisOptions{Prefix: newRedisPrefix(t)}, false},
		{"again on the same keys", client, queue.RedisOptions{Prefix: "test:NewRedis:shared:"}, false},
		{"nil client", nil, queue.RedisOptions{}, true},
		{"negative visibility", client, queue.RedisOptions{Visibility: -time.Second}, true},
		{"negative max attempts", client, queue.RedisOptions{MaxAttempts: -1}, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			for range 2 { // creating the group twice is fine
				q, err := queue.NewRedis(tc.client, tc.opts)
				if (err != nil) != tc.wantErr {
					t.Fatalf("NewRedis: got error %v, want error %v", err, tc.wantErr)
				}
				if q != nil {
					if err := q.Ping(context.Background()); err != nil {
						t.Fatalf("Ping: %v", err)
					}
					q.Close()
				}
			}
		})
	}
}

func TestRedisMalformedReceipt(t *testing.T) {
	q, _ := newTestRedis(t, nil)
	ctx := context.Background()
	enqueueBodies(t, q, queue.Normal, "a")
	ds, err := q.Reserve(ctx, 1)
	if err != nil {
		t.Fatal(err)
	}
	for _, receipt := range []string{"", "nope", "2:1-0:1", "0:1-0:x", "0000000000000000000000000000000000.1"} {
		bad := ds[0]
		bad.Receipt = receipt
		if err := q.Ack(ctx, ds[0], bad); err == nil {
			t.Errorf("Ack with receipt %q: got nil error", receipt)
		}
		if err := q.Fail(ctx, bad, "x"); err == nil || errors.Is(err, queue.ErrStaleReceipt) {
			t.Errorf("Fail with receipt %q: got %v, want a malformed-receipt error", receipt, err)
		}
	}
	wantStats(t, q, queue.Stats{Inflight: 1})
}

// Retry trusts the stored attempt count, not the one in the caller's Delivery.
func TestRedisRetryUsesStoredAttempts(t *testing.T) {
	q, clock := newTestRedis(t, func(o *queue.RedisOptions) {
		o.MaxAttempts, o.BackoffBase, o.BackoffMax = 3, time.Second, time.Hour
	})
	ctx := context.Background()
	enqueueBodies(t, q, queue.Normal, "a")
	ds, err := q.Reserve(ctx, 1)
	if err != nil {
		t.Fatal(err)
	}
	ds[0].Attempts = 5 // a confused caller
	if err := q.Retry(ctx, ds[0], "421"); err != nil {
		t.Fatalf("Retry: %v", err)
	}
	wantStats(t, q, queue.Stats{Ready: 1})
	clock.Advance(time.Second)
	ds, err = reserveWithin(t, q, 10*time.Second, 1)
	if err != nil || ds[0].Attempts != 1 {
		t.Fatalf("redelivery: got %+v, %v, want Attempts 1", ds, err)
	}
}

func TestRedisPingClosedClient(t *testing.T) {
	client := redis.NewClient(&redis.Options{Addr: redisAddr(t)})
	q := newRedisQueue(t, client, queue.RedisOptions{Prefix: newRedisPrefix(t)})
	if err := q.Ping(context.Background()); err != nil {
		t.Fatalf("Ping: %v", err)
	}
	client.Close()
	if err := q.Ping(context.Background()); err == nil {
		t.Fatal("Ping with the client closed: got nil error")
	}
}

// countingHook counts the commands a client sends.
type countingHook struct{ n atomic.Int64 }

func (h *countingHook) DialHook(next redis.DialHook) redis.DialHook { return next }
func (h *countingHook) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		h.n.Add(1)
		return next(ctx, cmd)
	}
}
func (h *countingHook) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		h.n.Add(int64(len(cmds)))
		return next(ctx, cmds)
	}
}

// A blocked Reserve waits on the server, not in a loop of commands.
func TestRedisReserveDoesNotSpin(t *testing.T) {
	client := newRedisClient(t, 0)
	hook := &countingHook{}
	client.AddHook(hook)
	q := newRedisQueue(t, client, queue.RedisOptions{Prefix: newRedisPrefix(t), PollInterval: time.Hour})
	enqueueBodies(t, q, queue.Normal, "held") // a pending entry makes the watcher's first look stale
	if _, err := q.Reserve(context.Background(), 1); err != nil {
		t.Fatal(err)
	}
	// The first waits warm up: connections, and the watcher's first (stale) look and
	// the wake it causes, which land whenever the watcher gets a CPU. Settled, a short
	// wait costs its own look alone; one that never settles is a spin.
	settled := false
	for range 40 {
		before := hook.n.Load()
		if _, err := reserveWithin(t, q, 50*time.Millisecond, 1); !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("Reserve: got %v, want %v", err, context.DeadlineExceeded)
		}
		if hook.n.Load()-before <= 1 {
			settled = true
			break
		}
	}
	if !settled {
		t.Fatal("every idle Reserve of 50ms sent more than one command, 40 times")
	}
	before := hook.n.Load()
	if ds, err := reserveWithin(t, q, 300*time.Millisecond, 1); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Reserve: got %q, %v, want %v", bodies(ds), err, context.DeadlineExceeded)
	}
	// One look, and the watcher's XREAD still blocking (or one more).
	if n := hook.n.Load() - before; n > 3 {
		t.Fatalf("an idle Reserve of 300ms sent %d commands, want at most 3", n)
	}
}

// A batch larger than one script's share keeps its order, delayed or not.
func TestRedisBigBatch(t *testing.T) {
	q, clock := newTestRedis(t, nil)
	ctx := context.Background()
	const n = 2345
	var msgs []queue.Message
	for i := range n {
		m := queue.Message{Kind: "test", Priority: queue.Normal, Body: []byte(fmt.Sprintf("m%04d", i))}
		if i%2 == 0 {
			m.NotBefore = clock.Now().Add(time.Minute)
		}
		msgs = append(msgs, m)
	}
	if err := q.Enqueue(ctx, msgs...); err != nil {
		t.Fatal(err)
	}
	wantStats(t, q, queue.Stats{Ready: n})
	clock.Advance(time.Minute)
	var got []string
	for len(got) < n {
		ds, err := reserveWithin(t, q, 10*time.Second, 1000)
		if err != nil {
			t.Fatalf("Reserve after %d: %v", len(got), err)
		}
		got = append(got, bodies(ds)...)
	}
	// The ready ones first, in order, then the delayed ones in order.
	var want []string
	for _, odd := range []int{1, 0} {
		for i := range n {
			if i%2 == odd {
				want = append(want, fmt.Sprintf("m%04d", i))
			}
		}
	}
	if !slices.Equal(got, want) {
		t.Fatalf("got %d messages, not in the order they became ready", len(got))
	}
	wantStats(t, q, queue.Stats{Inflight: n})
}
