package queue_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"consentmail/queue"
	"consentmail/queue/queuetest"
)

// runConsumer runs a consumer over q until the returned stop is called; stop waits for
// Run to return.
func runConsumer(t *testing.T, q queue.Queue, handlers map[string]queue.Handler, concurrency int) (stop func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	c := queue.NewConsumer(q, handlers, concurrency, slog.New(slog.NewTextHandler(io.Discard, nil)))
	go func() { done <- c.Run(ctx) }()
	var once sync.Once
	stop = func() {
		once.Do(func() {
			cancel()
			select {
			case err := <-done:
				if err != nil {
					t.Errorf("Run returned %v", err)
				}
			case <-time.After(10 * time.Second):
				t.Error("Run did not return after cancel")
			}
		})
	}
	t.Cleanup(stop)
	return stop
}

// waitStats polls the queue's counters (a condition on the queue, not a clock).
func waitStats(t *testing.T, q queue.Queue, cond func(queue.Stats) bool) queue.Stats {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		st, err := q.Stats(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		if cond(st) {
			return st
		}
		if time.Now().After(deadline) {
			t.Fatalf("queue stats %+v never met the condition", st)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func TestConsumerSettlesByOutcome(t *testing.T) {
	clock := queuetest.NewClock(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC))
	s := newBoltStore(t, queue.BoltOptions{Now: clock.Now, PollInterval: 5 * time.Millisecond, MaxAttempts: 3})
	var okCalls, tempCalls atomic.Int64
	handlers := map[string]queue.Handler{
		"ok":        func(context.Context, queue.Delivery) error { okCalls.Add(1); return nil },
		"permanent": func(context.Context, queue.Delivery) error { return queue.Permanent(errors.New("550 no such user")) },
		"temporary": func(context.Context, queue.Delivery) error { tempCalls.Add(1); return errors.New("451 try later") },
		"panics":    func(context.Context, queue.Delivery) error { panic("boom") },
	}
	ctx := context.Background()
	for i := 0; i < 50; i++ {
		if err := s.q.Enqueue(ctx, queue.Message{Kind: "ok", Priority: queue.Normal, Body: []byte{byte(i)}}); err != nil {
			t.Fatal(err)
		}
	}
	for _, kind := range []string{"permanent", "temporary", "panics", "no-handler"} {
		if err := s.q.Enqueue(ctx, queue.Message{Kind: kind, Priority: queue.Normal}); err != nil {
			t.Fatal(err)
		}
	}
	runConsumer(t, s.q, handlers, 4)

	// Successes are acknowledged, permanent failures and unknown kinds are dead at
	// once; the temporary failure and the panic wait for their backoff.
	waitStats(t, s.q, func(st queue.Stats) bool { return st.Dead == 2 && st.Ready == 2 && st.Inflight == 0 })
	if okCalls.Load() != 50 {
		t.Fatalf("ok handler ran %d times, want 50 (once each)", okCalls.Load())
	}
	// After MaxAttempts the retried ones are dead letters too.
	for attempt := 2; attempt <= 3; attempt++ {
		clock.Advance(2 * time.Hour)
		want := int64(attempt)
		// Wait for the retry to be written too, or the next Advance could come first.
		waitStats(t, s.q, func(st queue.Stats) bool {
			return tempCalls.Load() == want && (st.Ready == 2 || st.Dead == 4) && st.Inflight == 0
		})
	}
	st := waitStats(t, s.q, func(st queue.Stats) bool { return st.Dead == 4 && st.Ready == 0 && st.Inflight == 0 })
	dead, err := s.q.Dead(ctx, 10)
	if err != nil || len(dead) != 4 {
		t.Fatalf("dead letters %v, %v; want 4 (stats %+v)", dead, err, st)
	}
	kinds := map[string]string{}
	for _, m := range dead {
		kinds[m.Kind] = m.LastError
	}
	for kind, want := range map[string]string{"permanent": "550 no such user", "temporary": "451 try later",
		"no-handler": `no handler for kind "no-handler"`} {
		if kinds[kind] != want {
			t.Errorf("dead %s: last error %q, want %q", kind, kinds[kind], want)
		}
	}
	if _, ok := kinds["panics"]; !ok {
		t.Errorf("the panicking message is not a dead letter after its retries: %v", kinds)
	}
}

func TestConsumerBoundsConcurrencyAndFinishesWorkOnStop(t *testing.T) {
	s := newBoltStore(t, queue.BoltOptions{PollInterval: 5 * time.Millisecond})
	const concurrency = 3
	var running, peak, handled atomic.Int64
	release := make(chan struct{})
	started := make(chan struct{}, 100)
	handlers := map[string]queue.Handler{"slow": func(context.Context, queue.Delivery) error {
		n := running.Add(1)
		for {
			p := peak.Load()
			if n <= p || peak.CompareAndSwap(p, n) {
				break
			}
		}
		started <- struct{}{}
		<-release
		running.Add(-1)
		handled.Add(1)
		return nil
	}}
	for i := 0; i < 10; i++ {
		if err := s.q.Enqueue(context.Background(), queue.Message{Kind: "slow", Body: []byte(fmt.Sprint(i))}); err != nil {
			t.Fatal(err)
		}
	}
	stop := runConsumer(t, s.q, handlers, concurrency)
	for i := 0; i < concurrency; i++ {
		<-started
	}
	select {
	case <-started:
		t.Fatalf("a fourth handler started while %d were busy", concurrency)
	default:
	}
	// Stopping lets the handlers in hand finish and acknowledges them before Run returns.
	stopped := make(chan struct{})
	go func() { stop(); close(stopped) }()
	close(release)
	<-stopped
	if p := peak.Load(); p > concurrency {
		t.Fatalf("peak concurrency %d, want at most %d", p, concurrency)
	}
	st, err := s.q.Stats(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if h := handled.Load(); st.Inflight != 0 || st.Ready != 10-h || h < concurrency {
		t.Fatalf("after stop: %+v with %d handled; want nothing in flight, every handled message acknowledged and the rest ready", st, h)
	}
}

// A relay's reply echoing the recipient must not reach the dead letters (they live in
// the data directory) or the logs.
func TestConsumerStoresNoAddressInReasons(t *testing.T) {
	s := newBoltStore(t, queue.BoltOptions{PollInterval: 5 * time.Millisecond})
	if err := s.q.Enqueue(context.Background(), queue.Message{Kind: "send"}); err != nil {
		t.Fatal(err)
	}
	var logs syncBuffer
	c := queue.NewConsumer(s.q, map[string]queue.Handler{"send": func(context.Context, queue.Delivery) error {
		return queue.Permanent(errors.New("550 5.1.1 <secret.person@example.org>: no such user"))
	}}, 1, slog.New(slog.NewTextHandler(&logs, nil)))
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { c.Run(ctx); close(done) }()
	waitStats(t, s.q, func(st queue.Stats) bool { return st.Dead == 1 })
	cancel()
	<-done
	dead, err := s.q.Dead(context.Background(), 1)
	if err != nil || len(dead) != 1 {
		t.Fatalf("dead letters %v, %v", dead, err)
	}
	if strings.Contains(dead[0].LastError, "secret.person") || !strings.Contains(dead[0].LastError, "no such user") {
		t.Errorf("stored reason %q, want the reply without the address", dead[0].LastError)
	}
	if strings.Contains(logs.String(), "secret.person") || !strings.Contains(logs.String(), "failed permanently") {
		t.Errorf("logs %q, want the failure logged without the address", logs.String())
	}
}

// syncBuffer is a bytes.Buffer safe for the consumer's goroutines.
type syncBuffer struct {
	mu  sync.Mutex
	buf strings.Builder
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}
