package queue_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"path/filepath"
	"testing"
	"time"

	"go.etcd.io/bbolt"

	"consentmail/queue"
)

// flakyQueue fails Enqueue while fail is set: a Redis that is down.
type flakyQueue struct {
	queue.Queue
	fail chan bool // receives the new state
	down bool
}

func (f *flakyQueue) Enqueue(ctx context.Context, msgs ...queue.Message) error {
	select {
	case f.down = <-f.fail:
	default:
	}
	if f.down {
		return errors.New("connection refused")
	}
	return f.Queue.Enqueue(ctx, msgs...)
}

// runOutbox relays until the test ends.
func runOutbox(t *testing.T, o *queue.Outbox) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { o.Run(ctx, 10*time.Millisecond); close(done) }()
	t.Cleanup(func() { cancel(); <-done })
}

// reserveAll reserves from q until n messages came, and acknowledges them.
func reserveAll(t *testing.T, q queue.Queue, n int) []queue.Delivery {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var got []queue.Delivery
	for len(got) < n {
		ds, err := q.Reserve(ctx, n-len(got))
		if err != nil {
			t.Fatalf("Reserve after %d of %d: %v", len(got), n, err)
		}
		if err := q.Ack(ctx, ds...); err != nil {
			t.Fatal(err)
		}
		got = append(got, ds...)
	}
	return got
}

func TestOutboxRelaysCommittedMessagesToRedis(t *testing.T) {
	target, _ := newTestRedis(t, nil)
	path := filepath.Join(t.TempDir(), "consentmail.db")
	db := openDB(t, path)
	t.Cleanup(func() { db.Close() }) // after the relay stops: cleanups run last-in first-out
	flaky := &flakyQueue{Queue: target, fail: make(chan bool, 1)}
	o, err := queue.NewOutbox(db, flaky, nil, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}

	// A transaction that rolls back leaves nothing to relay.
	rollback := errors.New("signup failed")
	err = db.Update(func(tx *bbolt.Tx) error {
		if err := o.EnqueueTx(tx, queue.Message{Kind: "optin", Priority: queue.High, Body: []byte("lost")}); err != nil {
			return err
		}
		return rollback
	})
	if !errors.Is(err, rollback) {
		t.Fatal(err)
	}
	// Committed while the target is down: kept, then relayed once it is back.
	flaky.fail <- true
	runOutbox(t, o)
	for i := range 3 {
		err := db.Update(func(tx *bbolt.Tx) error {
			return o.EnqueueTx(tx, queue.Message{Kind: "optin", Priority: queue.High, Body: []byte(fmt.Sprint("m", i))})
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	if n, err := o.Pending(context.Background()); err != nil || n != 3 {
		t.Fatalf("Pending while the target is down = %d, %v; want 3", n, err)
	}
	flaky.fail <- false
	got := reserveAll(t, target, 3)
	for i, d := range got {
		if want := fmt.Sprint("m", i); string(d.Body) != want || d.Priority != queue.High || d.ID == "" {
			t.Errorf("message %d: body %q priority %d id %q; want %q, High and an ID", i, d.Body, d.Priority, d.ID, want)
		}
	}
	waitPending(t, o, 0)
}

func TestOutboxRelaysWhatAnEarlierProcessLeft(t *testing.T) {
	target, _ := newTestRedis(t, nil)
	path := filepath.Join(t.TempDir(), "consentmail.db")
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	db := openDB(t, path)
	o, err := queue.NewOutbox(db, target, nil, log)
	if err != nil {
		t.Fatal(err)
	}
	err = db.Update(func(tx *bbolt.Tx) error {
		return o.EnqueueTx(tx, queue.Message{Kind: "optin", Body: []byte("a")}, queue.Message{Kind: "optin", Body: []byte("b")})
	})
	if err != nil {
		t.Fatal(err)
	}
	// The process dies before relaying: the messages are in the file.
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	db = openDB(t, path)
	t.Cleanup(func() { db.Close() })
	o, err = queue.NewOutbox(db, target, nil, log)
	if err != nil {
		t.Fatal(err)
	}
	runOutbox(t, o)
	got := reserveAll(t, target, 2)
	if string(got[0].Body) != "a" || string(got[1].Body) != "b" {
		t.Fatalf("relayed %q, %q; want a, b in order", got[0].Body, got[1].Body)
	}
	waitPending(t, o, 0)
}

func waitPending(t *testing.T, o *queue.Outbox, want int) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		n, err := o.Pending(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		if n == want {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("Pending = %d, want %d", n, want)
		}
		time.Sleep(5 * time.Millisecond)
	}
}
