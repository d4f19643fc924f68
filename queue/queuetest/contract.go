package queuetest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"consentmail/queue"
)

// epoch is where every test clock starts.
var epoch = time.Date(2025, 1, 1, 9, 0, 0, 0, time.UTC)

const (
	// patience bounds every wait for something that must happen.
	patience = 10 * time.Second
	// quiet is how long a Reserve must stay empty to show nothing is ready.
	quiet = 50 * time.Millisecond
)

func defaults() Options {
	return Options{
		Visibility:   30 * time.Second,
		MaxAttempts:  3,
		BackoffBase:  10 * time.Second,
		BackoffMax:   time.Minute,
		PollInterval: 10 * time.Millisecond,
	}
}

// env is one queue under test with its clock.
type env struct {
	t     *testing.T
	h     Harness
	clock *Clock
	opts  Options
	q     queue.Queue
}

func newEnv(t *testing.T, h Harness, configure func(*Options)) *env {
	t.Helper()
	opts := defaults()
	if configure != nil {
		configure(&opts)
	}
	clock := NewClock(epoch)
	return &env{t: t, h: h, clock: clock, opts: opts, q: h.New(t, clock, opts)}
}

func (e *env) reopen() {
	e.t.Helper()
	e.q = e.h.Reopen(e.t, e.q)
}

func (e *env) ctx() context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), patience)
	e.t.Cleanup(cancel)
	return ctx
}

func (e *env) enqueue(msgs ...queue.Message) {
	e.t.Helper()
	if err := e.q.Enqueue(e.ctx(), msgs...); err != nil {
		e.t.Fatalf("Enqueue: %v", err)
	}
}

// reserve returns what one Reserve call returns, failing the test if it errs.
func (e *env) reserve(max int) []queue.Delivery {
	e.t.Helper()
	ds, err := e.q.Reserve(e.ctx(), max)
	if err != nil {
		e.t.Fatalf("Reserve(%d): %v", max, err)
	}
	if len(ds) == 0 || len(ds) > max {
		e.t.Fatalf("Reserve(%d) returned %d deliveries", max, len(ds))
	}
	return ds
}

// reserveAll reserves until it holds n deliveries.
func (e *env) reserveAll(n int) []queue.Delivery {
	e.t.Helper()
	var all []queue.Delivery
	for len(all) < n {
		all = append(all, e.reserve(n-len(all))...)
	}
	return all
}

// reserveNone checks that nothing is ready: a short Reserve must time out empty.
func (e *env) reserveNone() {
	e.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), quiet)
	defer cancel()
	ds, err := e.q.Reserve(ctx, 10)
	if len(ds) > 0 {
		e.t.Fatalf("Reserve returned %q, want nothing ready", bodies(ds))
	}
	if !errors.Is(err, context.DeadlineExceeded) {
		e.t.Fatalf("Reserve on an empty queue: got error %v, want %v", err, context.DeadlineExceeded)
	}
}

func (e *env) ack(ds ...queue.Delivery) {
	e.t.Helper()
	if err := e.q.Ack(e.ctx(), ds...); err != nil {
		e.t.Fatalf("Ack: %v", err)
	}
}

func (e *env) retry(d queue.Delivery, reason string) {
	e.t.Helper()
	if err := e.q.Retry(e.ctx(), d, reason); err != nil {
		e.t.Fatalf("Retry(%s): %v", d.Body, err)
	}
}

func (e *env) fail(d queue.Delivery, reason string) {
	e.t.Helper()
	if err := e.q.Fail(e.ctx(), d, reason); err != nil {
		e.t.Fatalf("Fail(%s): %v", d.Body, err)
	}
}

func (e *env) dead(limit int) []queue.Message {
	e.t.Helper()
	ms, err := e.q.Dead(e.ctx(), limit)
	if err != nil {
		e.t.Fatalf("Dead(%d): %v", limit, err)
	}
	return ms
}

func (e *env) wantStats(want queue.Stats) {
	e.t.Helper()
	got, err := e.q.Stats(e.ctx())
	if err != nil {
		e.t.Fatalf("Stats: %v", err)
	}
	if got != want {
		e.t.Fatalf("Stats: got %+v, want %+v", got, want)
	}
}

func msg(p queue.Priority, body string) queue.Message {
	return queue.Message{Kind: "test", Priority: p, Body: []byte(body)}
}

func bodies[M queue.Message | queue.Delivery](ms []M) []string {
	out := make([]string, len(ms))
	for i, m := range ms {
		switch m := any(m).(type) {
		case queue.Message:
			out[i] = string(m.Body)
		case queue.Delivery:
			out[i] = string(m.Body)
		}
	}
	return out
}

func wantBodies[M queue.Message | queue.Delivery](t *testing.T, what string, ms []M, want ...string) {
	t.Helper()
	if got := bodies(ms); !slices.Equal(got, want) {
		t.Fatalf("%s: got %q, want %q", what, got, want)
	}
}

func testEnqueueReserveAck(t *testing.T, h Harness) {
	e := newEnv(t, h, nil)
	in := queue.Message{
		Kind:      "optin",
		Priority:  queue.High,
		Body:      []byte("opaque\x00bytes"),
		NotBefore: e.clock.Now().Add(-time.Minute), // in the past: ready now
	}
	e.enqueue(in)
	e.wantStats(queue.Stats{Ready: 1, High: 1})

	d := e.reserve(10)[0]
	if d.ID == "" || d.Receipt == "" {
		t.Errorf("delivery has ID %q and Receipt %q, want both set", d.ID, d.Receipt)
	}
	if d.Kind != in.Kind || d.Priority != in.Priority || !bytes.Equal(d.Body, in.Body) ||
		!d.NotBefore.Equal(in.NotBefore) || d.Attempts != 0 || d.LastError != "" {
		t.Errorf("delivered %+v, want the fields of %+v", d.Message, in)
	}
	e.wantStats(queue.Stats{Inflight: 1})
	e.reserveNone()

	e.ack(d)
	e.wantStats(queue.Stats{})
	e.reserveNone()
}

func testIDs(t *testing.T, h Harness) {
	e := newEnv(t, h, nil)
	for i := range 4 {
		var batch []queue.Message
		for j := range 5 {
			batch = append(batch, msg(queue.Normal, fmt.Sprintf("m%d", i*5+j)))
		}
		e.enqueue(batch...)
	}
	own := msg(queue.Normal, "own")
	own.ID, own.Attempts, own.LastError = "caller-1", 5, "set by producer"
	e.enqueue(own)

	seen := make(map[string]string)
	for _, d := range e.reserveAll(21) {
		if d.ID == "" {
			t.Errorf("%s: empty ID", d.Body)
		}
		if other, dup := seen[d.ID]; dup {
			t.Errorf("%s and %s share ID %q", other, d.Body, d.ID)
		}
		seen[d.ID] = string(d.Body)
		if string(d.Body) == "own" && (d.ID != "caller-1" || d.Attempts != 0 || d.LastError != "") {
			t.Errorf("own message: got ID %q, Attempts %d, LastError %q, want %q, 0, \"\"",
				d.ID, d.Attempts, d.LastError, "caller-1")
		}
	}
}

func testFIFOWithinLane(t *testing.T, h Harness) {
	for _, lane := range []queue.Priority{queue.High, queue.Normal} {
		t.Run(fmt.Sprintf("priority %d", lane), func(t *testing.T) {
			e := newEnv(t, h, nil)
			var want []string
			for i := range 5 { // one call each
				want = append(want, fmt.Sprintf("m%d", i))
				e.enqueue(msg(lane, want[i]))
			}
			var batch []queue.Message // then one call for several
			for i := 5; i < 8; i++ {
				want = append(want, fmt.Sprintf("m%d", i))
				batch = append(batch, msg(lane, want[i]))
			}
			e.enqueue(batch...)

			wantBodies(t, "first Reserve(1)", e.reserve(1), want[0])
			wantBodies(t, "then Reserve(2)", e.reserve(2), want[1:3]...)
			wantBodies(t, "then Reserve(10)", e.reserve(10), want[3:]...)
		})
	}
}

func testHighBeforeNormal(t *testing.T, h Harness) {
	e := newEnv(t, h, nil)
	e.enqueue(msg(queue.Normal, "n1"))
	e.enqueue(msg(queue.Normal, "n2"))
	e.enqueue(msg(queue.High, "h1"))
	e.enqueue(msg(queue.High, "h2"))
	wantBodies(t, "Reserve(1)", e.reserve(1), "h1")
	wantBodies(t, "then Reserve(10)", e.reserve(10), "h2", "n1", "n2")

	// A message that does not say its priority is Normal: it never jumps the queue.
	e.enqueue(queue.Message{Kind: "test", Body: []byte("unset")})
	e.enqueue(msg(queue.High, "h3"))
	ds := e.reserve(10)
	wantBodies(t, "unset priority", ds, "h3", "unset")
	if ds[1].Priority != queue.Normal {
		t.Errorf("unset priority delivered as %d, want Normal (%d)", ds[1].Priority, queue.Normal)
	}
}

func testNotBefore(t *testing.T, h Harness) {
	e := newEnv(t, h, nil)
	start := e.clock.Now()
	later := msg(queue.High, "in 2m")
	later.NotBefore = start.Add(2 * time.Minute)
	sooner := msg(queue.High, "in 1m")
	sooner.NotBefore = start.Add(time.Minute)
	e.enqueue(later)
	e.enqueue(sooner)
	e.enqueue(msg(queue.Normal, "now"))

	// A delayed High message does not hold back a ready Normal one.
	ds := e.reserve(10)
	wantBodies(t, "at start", ds, "now")
	e.ack(ds...)
	e.wantStats(queue.Stats{Ready: 2, High: 2})
	e.reserveNone()

	e.clock.Advance(time.Minute - time.Second)
	e.reserveNone()
	e.clock.Advance(2 * time.Minute)
	// Both are due now; they come in the order they fell due, not enqueue order.
	ds = e.reserve(10)
	wantBodies(t, "once due", ds, "in 1m", "in 2m")
	if !ds[0].NotBefore.Equal(sooner.NotBefore) {
		t.Errorf("NotBefore: got %v, want %v", ds[0].NotBefore, sooner.NotBefore)
	}
	e.ack(ds...)
	e.wantStats(queue.Stats{})
}

func testVisibilityTimeout(t *testing.T, h Harness) {
	e := newEnv(t, h, nil)
	e.enqueue(msg(queue.Normal, "a"))
	first := e.reserve(1)[0]
	e.reserveNone()
	e.clock.Advance(e.opts.Visibility - time.Second)
	e.reserveNone()

	e.clock.Advance(2 * time.Second)
	again := e.reserve(1)[0]
	if again.ID != first.ID || string(again.Body) != "a" || again.Attempts != 0 {
		t.Fatalf("redelivered ID %q body %q attempts %d, want ID %q body %q attempts 0",
			again.ID, again.Body, again.Attempts, first.ID, "a")
	}
	if again.Receipt == first.Receipt {
		t.Errorf("redelivery reuses receipt %q", first.Receipt)
	}
	e.wantStats(queue.Stats{Inflight: 1})
	e.ack(again)
	e.wantStats(queue.Stats{})
	e.reserveNone()
}

func testRetryBackoff(t *testing.T, h Harness) {
	e := newEnv(t, h, func(o *Options) {
		o.MaxAttempts, o.BackoffBase, o.BackoffMax = 3, 10*time.Second, 15*time.Second
	})
	e.enqueue(msg(queue.Normal, "a"))
	var id, lastErr string
	for attempt := 1; attempt < e.opts.MaxAttempts; attempt++ {
		d := e.reserve(1)[0]
		if d.Attempts != attempt-1 || d.LastError != lastErr {
			t.Fatalf("delivery %d: got Attempts %d LastError %q, want %d %q",
				attempt, d.Attempts, d.LastError, attempt-1, lastErr)
		}
		id, lastErr = d.ID, fmt.Sprintf("421 try later (%d)", attempt)
		e.retry(d, lastErr)
		e.wantStats(queue.Stats{Ready: 1})

		wait := queue.Backoff(attempt, e.opts.BackoffBase, e.opts.BackoffMax)
		e.clock.Advance(wait - time.Second)
		e.reserveNone()
		e.clock.Advance(time.Second)
	}
	d := e.reserve(1)[0]
	if d.ID != id || d.Attempts != e.opts.MaxAttempts-1 || d.LastError != lastErr {
		t.Fatalf("last delivery: got ID %q Attempts %d LastError %q, want %q %d %q",
			d.ID, d.Attempts, d.LastError, id, e.opts.MaxAttempts-1, lastErr)
	}
	e.retry(d, "421 still later")
	e.wantStats(queue.Stats{Dead: 1})
	dead := e.dead(10)
	if len(dead) != 1 || dead[0].ID != id || dead[0].Attempts != e.opts.MaxAttempts ||
		dead[0].LastError != "421 still later" || string(dead[0].Body) != "a" {
		t.Fatalf("dead letters: got %+v, want a with Attempts %d", dead, e.opts.MaxAttempts)
	}
	e.clock.Advance(time.Hour)
	e.reserveNone()
}

func testFail(t *testing.T, h Harness) {
	e := newEnv(t, h, nil)
	e.enqueue(msg(queue.Normal, "a"), msg(queue.Normal, "b"), msg(queue.Normal, "c"))
	a := e.reserve(1)[0]
	e.fail(a, "550 no such user")
	e.wantStats(queue.Stats{Ready: 2, Dead: 1})
	dead := e.dead(10)
	if len(dead) != 1 || dead[0].ID != a.ID || dead[0].LastError != "550 no such user" || dead[0].Attempts != 0 {
		t.Fatalf("dead letters: got %+v, want a with LastError %q", dead, "550 no such user")
	}
	e.fail(e.reserve(1)[0], "552 mailbox full")

	for _, tc := range []struct {
		limit int
		want  []string
	}{
		{0, []string{}},
		{1, []string{"a"}},
		{2, []string{"a", "b"}},
		{10, []string{"a", "b"}},
	} {
		wantBodies(t, fmt.Sprintf("Dead(%d)", tc.limit), e.dead(tc.limit), tc.want...)
	}
	e.clock.Advance(time.Hour)
	wantBodies(t, "Reserve after Fail", e.reserve(10), "c")
}

func testStaleReceipts(t *testing.T, h Harness) {
	for _, tc := range []struct {
		name string
		// stale leaves a delivery of "a" whose receipt is stale, and the queue in state want.
		stale func(e *env) queue.Delivery
		want  queue.Stats
	}{
		{
			name: "expired and reserved again",
			stale: func(e *env) queue.Delivery {
				old := e.reserve(1)[0]
				e.clock.Advance(e.opts.Visibility + time.Second)
				if again := e.reserve(1)[0]; again.ID != old.ID {
					e.t.Fatalf("redelivered %s, want %s", again.ID, old.ID)
				}
				return old
			},
			want: queue.Stats{Inflight: 1},
		},
		{
			name: "acked",
			stale: func(e *env) queue.Delivery {
				d := e.reserve(1)[0]
				e.ack(d)
				return d
			},
			want: queue.Stats{},
		},
		{
			name: "retried",
			stale: func(e *env) queue.Delivery {
				d := e.reserve(1)[0]
				e.retry(d, "first")
				return d
			},
			want: queue.Stats{Ready: 1},
		},
		{
			name: "failed",
			stale: func(e *env) queue.Delivery {
				d := e.reserve(1)[0]
				e.fail(d, "first")
				return d
			},
			want: queue.Stats{Dead: 1},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t, h, nil)
			e.enqueue(msg(queue.Normal, "a"))
			d := tc.stale(e)

			if err := e.q.Ack(e.ctx(), d); err != nil {
				t.Errorf("Ack of a stale receipt: got %v, want nil", err)
			}
			if err := e.q.Retry(e.ctx(), d, "stale"); !errors.Is(err, queue.ErrStaleReceipt) {
				t.Errorf("Retry of a stale receipt: got %v, want %v", err, queue.ErrStaleReceipt)
			}
			if err := e.q.Fail(e.ctx(), d, "stale"); !errors.Is(err, queue.ErrStaleReceipt) {
				t.Errorf("Fail of a stale receipt: got %v, want %v", err, queue.ErrStaleReceipt)
			}
			e.wantStats(tc.want)
			for _, m := range e.dead(10) {
				if m.LastError == "stale" {
					t.Errorf("a stale Fail made a dead letter: %+v", m)
				}
			}
		})
	}
}

type reserved struct {
	ds  []queue.Delivery
	err error
}

// reserveAsync runs Reserve in its own goroutine; the result arrives on the channel.
func (e *env) reserveAsync(ctx context.Context, max int) <-chan reserved {
	ch := make(chan reserved, 1)
	go func() {
		ds, err := e.q.Reserve(ctx, max)
		ch <- reserved{ds, err}
	}()
	return ch
}

func (e *env) await(ch <-chan reserved) reserved {
	e.t.Helper()
	select {
	case r := <-ch:
		return r
	case <-time.After(patience):
		e.t.Fatalf("Reserve still blocked after %v", patience)
		return reserved{}
	}
}

func testReserveWokenByEnqueue(t *testing.T, h Harness) {
	// With an hour between polls, only the Enqueue itself can wake the consumers.
	e := newEnv(t, h, func(o *Options) { o.PollInterval = time.Hour })
	const consumers = 3
	var waits []<-chan reserved
	for range consumers {
		waits = append(waits, e.reserveAsync(e.ctx(), 1))
	}
	for i := range consumers {
		e.enqueue(msg(queue.High, fmt.Sprintf("m%d", i)))
	}
	var got []string
	for _, w := range waits {
		r := e.await(w)
		if r.err != nil || len(r.ds) != 1 {
			t.Fatalf("Reserve(1): got %q, %v, want one delivery", bodies(r.ds), r.err)
		}
		got = append(got, string(r.ds[0].Body))
	}
	slices.Sort(got)
	if want := []string{"m0", "m1", "m2"}; !slices.Equal(got, want) {
		t.Fatalf("consumers got %q, want %q", got, want)
	}
}

func testReserveWokenByClock(t *testing.T, h Harness) {
	for _, tc := range []struct {
		name    string
		prepare func(e *env)
		advance time.Duration
	}{
		{
			name: "delayed message falls due",
			prepare: func(e *env) {
				m := msg(queue.Normal, "a")
				m.NotBefore = e.clock.Now().Add(time.Minute)
				e.enqueue(m)
			},
			advance: time.Minute,
		},
		{
			name: "lease expires",
			prepare: func(e *env) {
				e.enqueue(msg(queue.Normal, "a"))
				e.reserve(1)
			},
			advance: defaults().Visibility + time.Second,
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t, h, nil)
			tc.prepare(e)
			w := e.reserveAsync(e.ctx(), 1)
			e.clock.Advance(tc.advance)
			r := e.await(w)
			if r.err != nil {
				t.Fatalf("Reserve: %v", r.err)
			}
			wantBodies(t, "Reserve", r.ds, "a")
		})
	}
}

func testReserveContext(t *testing.T, h Harness) {
	for _, tc := range []struct {
		name string
		ctx  func() (context.Context, context.CancelFunc) // cancel is called after Reserve starts
		want error
	}{
		{"canceled while waiting", func() (context.Context, context.CancelFunc) {
			return context.WithCancel(context.Background())
		}, context.Canceled},
		{"deadline passes", func() (context.Context, context.CancelFunc) {
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
			return ctx, func() { <-ctx.Done(); cancel() }
		}, context.DeadlineExceeded},
		{"canceled before", func() (context.Context, context.CancelFunc) {
			ctx, cancel := context.WithCancel(context.Background())
			cancel()
			return ctx, cancel
		}, context.Canceled},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t, h, func(o *Options) { o.PollInterval = time.Hour })
			ctx, cancel := tc.ctx()
			w := e.reserveAsync(ctx, 1)
			cancel()
			if r := e.await(w); !errors.Is(r.err, tc.want) || len(r.ds) != 0 {
				t.Fatalf("Reserve: got %q, %v, want %v", bodies(r.ds), r.err, tc.want)
			}
		})
	}
}

func testConcurrentConsumers(t *testing.T, h Harness) {
	const (
		producers, calls, perCall = 4, 10, 25
		total                     = producers * calls * perCall
		consumers, batch          = 8, 7
	)
	// Visibility is never reached: the clock does not move.
	e := newEnv(t, h, nil)
	ctx, cancel := context.WithTimeout(context.Background(), patience)
	defer cancel()

	var (
		mu    sync.Mutex
		count = make(map[string]int)
		acked int
		wg    sync.WaitGroup
	)
	for c := range consumers {
		wg.Go(func() {
			for {
				ds, err := e.q.Reserve(ctx, batch)
				if err != nil {
					if ctx.Err() == nil {
						t.Errorf("consumer %d: Reserve: %v", c, err)
					}
					return
				}
				if err := e.q.Ack(context.Background(), ds...); err != nil {
					t.Errorf("consumer %d: Ack: %v", c, err)
					return
				}
				mu.Lock()
				for _, d := range ds {
					count[string(d.Body)]++
				}
				acked += len(ds)
				if acked >= total {
					cancel()
				}
				mu.Unlock()
			}
		})
	}
	for p := range producers {
		wg.Go(func() {
			for c := range calls {
				msgs := make([]queue.Message, perCall)
				for i := range msgs {
					msgs[i] = msg(queue.Priority(i%2), fmt.Sprintf("p%d-c%d-m%d", p, c, i))
				}
				if err := e.q.Enqueue(context.Background(), msgs...); err != nil {
					t.Errorf("producer %d: Enqueue: %v", p, err)
					return
				}
			}
		})
	}
	wg.Wait()
	if t.Failed() {
		return
	}
	if ctx.Err() == context.DeadlineExceeded && acked < total {
		t.Fatalf("acked %d of %d messages within %v", acked, total, patience)
	}
	if len(count) != total || acked != total {
		t.Errorf("got %d distinct of %d deliveries, want %d exactly once", len(count), acked, total)
	}
	for body, n := range count {
		if n != 1 {
			t.Errorf("%s delivered %d times, want 1", body, n)
		}
	}
	e.wantStats(queue.Stats{})
	e.reserveNone()
}

func testStats(t *testing.T, h Harness) {
	e := newEnv(t, h, nil)
	var held []queue.Delivery
	for _, step := range []struct {
		name string
		do   func()
		want queue.Stats
	}{
		{"empty", func() {}, queue.Stats{}},
		{"enqueue 3 High, 2 Normal of which one delayed", func() {
			delayed := msg(queue.Normal, "n2")
			delayed.NotBefore = e.clock.Now().Add(time.Hour)
			e.enqueue(msg(queue.High, "h1"), msg(queue.High, "h2"), msg(queue.High, "h3"), msg(queue.Normal, "n1"), delayed)
		}, queue.Stats{Ready: 5, High: 3}},
		{"reserve 2", func() { held = e.reserve(2) }, queue.Stats{Ready: 3, High: 1, Inflight: 2}},
		{"ack 1", func() { e.ack(held[0]) }, queue.Stats{Ready: 3, High: 1, Inflight: 1}},
		{"fail 1", func() { e.fail(held[1], "550") }, queue.Stats{Ready: 3, High: 1, Dead: 1}},
		{"reserve 2 more", func() { held = e.reserve(2) }, queue.Stats{Ready: 1, Inflight: 2, Dead: 1}},
		{"retry 1", func() { e.retry(held[0], "421") }, queue.Stats{Ready: 2, High: 1, Inflight: 1, Dead: 1}},
		{"ack the other", func() { e.ack(held[1]) }, queue.Stats{Ready: 2, High: 1, Dead: 1}},
	} {
		step.do()
		got, err := e.q.Stats(e.ctx())
		if err != nil {
			t.Fatalf("%s: Stats: %v", step.name, err)
		}
		if got != step.want {
			t.Fatalf("%s: got %+v, want %+v", step.name, got, step.want)
		}
	}
}

func testRestart(t *testing.T, h Harness) {
	if h.Reopen == nil {
		t.Skip("Harness.Reopen not set")
	}
	e := newEnv(t, h, nil)
	e.enqueue(msg(queue.Normal, "a"), msg(queue.Normal, "b"), msg(queue.High, "c"), msg(queue.Normal, "x"))
	before := e.reserve(4)
	byBody := make(map[string]queue.Delivery)
	for _, d := range before {
		byBody[string(d.Body)] = d
	}
	e.retry(byBody["c"], "421 later")
	e.fail(byBody["x"], "550 unknown")
	// a and b stay reserved, never settled: the process "crashes".

	e.reopen()
	// A crash voids leases, at the latest when their visibility timeout passes.
	e.clock.Advance(max(e.opts.Visibility, e.opts.BackoffMax) + time.Second)
	after := e.reserveAll(3)
	got := bodies(after)
	slices.Sort(got)
	if want := []string{"a", "b", "c"}; !slices.Equal(got, want) {
		t.Fatalf("after restart delivered %q, want %q", got, want)
	}
	for _, d := range after {
		if d.ID != byBody[string(d.Body)].ID {
			t.Errorf("%s: ID %q after restart, want %q", d.Body, d.ID, byBody[string(d.Body)].ID)
		}
		if string(d.Body) == "c" && (d.Attempts != 1 || d.LastError != "421 later" || d.Priority != queue.High) {
			t.Errorf("c after restart: got Attempts %d LastError %q Priority %d, want 1 %q %d",
				d.Attempts, d.LastError, d.Priority, "421 later", queue.High)
		}
	}
	wantBodies(t, "dead letters after restart", e.dead(10), "x")

	// Receipts from before the restart are stale.
	if err := e.q.Ack(e.ctx(), byBody["a"]); err != nil {
		t.Errorf("Ack of a receipt from before the restart: %v", err)
	}
	if err := e.q.Retry(e.ctx(), byBody["b"], "old"); !errors.Is(err, queue.ErrStaleReceipt) {
		t.Errorf("Retry of a receipt from before the restart: got %v, want %v", err, queue.ErrStaleReceipt)
	}
	e.wantStats(queue.Stats{Inflight: 3, Dead: 1})

	e.ack(after...)
	e.reopen()
	e.wantStats(queue.Stats{Dead: 1})
	e.reserveNone()
	wantBodies(t, "dead letters after second restart", e.dead(10), "x")
}

// testRewrite: waiting messages (ready, delayed) and dead letters can be changed or
// dropped; what is left is delivered with its new body; untouched messages stay.
func testRewrite(t *testing.T, h Harness) {
	e := newEnv(t, h, nil)
	rw, ok := e.q.(queue.Rewriter)
	if !ok {
		t.Fatalf("%T is not a queue.Rewriter", e.q)
	}
	e.enqueue(msg(queue.Normal, "keep"), msg(queue.Normal, "change"), msg(queue.High, "drop"))
	delayed := msg(queue.Normal, "later-change")
	delayed.NotBefore = e.clock.Now().Add(time.Minute)
	e.enqueue(delayed)
	e.enqueue(msg(queue.Normal, "to-die"))
	// Let "to-die" die: it is the last ready message of the Normal lane.
	for _, d := range e.reserveAll(4) {
		if string(d.Body) == "to-die" {
			e.fail(d, "550")
		} else {
			e.retry(d, "not yet") // back in the queue, delayed by the backoff
		}
	}
	e.enqueue(msg(queue.Normal, "fresh"), msg(queue.Normal, "fresh-drop")) // waiting in the stream itself
	old, n, err := rw.Rewrite(e.ctx(), func(m queue.Message) ([]byte, bool) {
		switch b := string(m.Body); b {
		case "drop", "fresh-drop":
			return nil, true
		case "change", "later-change", "to-die", "fresh":
			return []byte(b + "d"), true
		}
		return nil, false
	})
	if err != nil {
		t.Fatal(err)
	}
	if n != 6 || len(old) != 6 {
		t.Fatalf("Rewrite changed %d (old bodies %q), want 6", n, old)
	}
	if got := e.dead(10); len(got) != 1 || string(got[0].Body) != "to-died" {
		t.Errorf("dead letters %v, want the rewritten one", bodies(got))
	}
	e.clock.Advance(time.Hour)
	got := bodies(e.reserveAll(4))
	slices.Sort(got)
	if want := []string{"changed", "freshd", "keep", "later-changed"}; !slices.Equal(got, want) {
		t.Errorf("delivered %q after Rewrite, want %q", got, want)
	}
	e.reserveNone()
}
