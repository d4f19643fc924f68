package queue_test

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"go.etcd.io/bbolt"

	"consentmail/queue"
	"consentmail/queue/queuetest"
)

func openDB(tb testing.TB, path string) *bbolt.DB {
	tb.Helper()
	db, err := bbolt.Open(path, 0o600, &bbolt.Options{Timeout: time.Second})
	if err != nil {
		tb.Fatalf("open %s: %v", path, err)
	}
	return db
}

func boltOptions(clock *queuetest.Clock, o queuetest.Options) queue.BoltOptions {
	return queue.BoltOptions{
		Visibility:   o.Visibility,
		MaxAttempts:  o.MaxAttempts,
		BackoffBase:  o.BackoffBase,
		BackoffMax:   o.BackoffMax,
		PollInterval: o.PollInterval,
		Now:          clock.Now,
	}
}

// boltStore is a Bolt queue with its file, so it can be reopened.
type boltStore struct {
	path string
	db   *bbolt.DB
	q    *queue.Bolt
	opts queue.BoltOptions
}

// newBoltStore opens a Bolt queue in a fresh file under t.TempDir, closed at cleanup.
func newBoltStore(t testing.TB, opts queue.BoltOptions) *boltStore {
	t.Helper()
	s := &boltStore{path: filepath.Join(t.TempDir(), "consentmail.db"), opts: opts}
	s.open(t)
	t.Cleanup(func() { s.close(t) })
	return s
}

func (s *boltStore) open(t testing.TB) {
	t.Helper()
	s.db = openDB(t, s.path)
	q, err := queue.NewBolt(s.db, s.opts)
	if err != nil {
		t.Fatalf("NewBolt: %v", err)
	}
	s.q = q
}

func (s *boltStore) close(t testing.TB) {
	t.Helper()
	if s.db == nil {
		return
	}
	if err := s.q.Close(); err != nil {
		t.Errorf("Bolt.Close: %v", err)
	}
	if err := s.db.Close(); err != nil {
		t.Errorf("bbolt Close: %v", err)
	}
	s.db = nil
}

// reopen simulates a crash and restart: the old Bolt's leases are lost with it.
func (s *boltStore) reopen(t testing.TB) *queue.Bolt {
	t.Helper()
	s.close(t)
	s.open(t)
	return s.q
}

func TestBoltContract(t *testing.T) {
	var (
		mu     sync.Mutex
		stores = make(map[queue.Queue]*boltStore)
	)
	queuetest.Run(t, queuetest.Harness{
		New: func(t *testing.T, clock *queuetest.Clock, opts queuetest.Options) queue.Queue {
			s := newBoltStore(t, boltOptions(clock, opts))
			mu.Lock()
			defer mu.Unlock()
			stores[s.q] = s
			return s.q
		},
		Reopen: func(t *testing.T, q queue.Queue) queue.Queue {
			mu.Lock()
			defer mu.Unlock()
			s := stores[q]
			delete(stores, q)
			s.reopen(t)
			stores[s.q] = s
			return s.q
		},
	})
}

var epoch = time.Date(2025, 1, 1, 9, 0, 0, 0, time.UTC)

func newTestBolt(t *testing.T, configure func(*queue.BoltOptions)) (*boltStore, *queuetest.Clock) {
	t.Helper()
	clock := queuetest.NewClock(epoch)
	opts := queue.BoltOptions{PollInterval: 10 * time.Millisecond, Now: clock.Now}
	if configure != nil {
		configure(&opts)
	}
	return newBoltStore(t, opts), clock
}

func reserveWithin(t *testing.T, q queue.Queue, d time.Duration, max int) ([]queue.Delivery, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	return q.Reserve(ctx, max)
}

func bodies(ds []queue.Delivery) []string {
	var out []string
	for _, d := range ds {
		out = append(out, string(d.Body))
	}
	return out
}

func TestBoltEnqueueTx(t *testing.T) {
	subscribers := []byte("test.subscribers")
	errSignup := errors.New("signup refused")
	for _, tc := range []struct {
		name      string
		fail      bool // the caller's transaction returns an error
		wantErr   error
		wantReady int64
	}{
		{name: "rolled back", fail: true, wantErr: errSignup, wantReady: 0},
		{name: "committed", fail: false, wantErr: nil, wantReady: 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			// An hour between polls: only the commit can wake the blocked Reserve.
			s, _ := newTestBolt(t, func(o *queue.BoltOptions) { o.PollInterval = time.Hour })
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			type result struct {
				ds  []queue.Delivery
				err error
			}
			blocked := make(chan result, 1)
			go func() {
				ds, err := s.q.Reserve(ctx, 10)
				blocked <- result{ds, err}
			}()

			err := s.db.Update(func(tx *bbolt.Tx) error {
				b, err := tx.CreateBucketIfNotExists(subscribers)
				if err != nil {
					return err
				}
				if err := b.Put([]byte("sub-1"), []byte("pending")); err != nil {
					return err
				}
				if err := s.q.EnqueueTx(tx, queue.Message{Kind: "optin", Priority: queue.High, Body: []byte("sub-1")}); err != nil {
					return err
				}
				// Not visible before the caller commits.
				if ds, err := reserveWithin(t, s.q, 20*time.Millisecond, 10); !errors.Is(err, context.DeadlineExceeded) {
					t.Errorf("Reserve inside the caller's transaction: got %q, %v, want %v", bodies(ds), err, context.DeadlineExceeded)
				}
				if tc.fail {
					return errSignup
				}
				return nil
			})
			if !errors.Is(err, tc.wantErr) {
				t.Fatalf("Update: got %v, want %v", err, tc.wantErr)
			}
			// The blocked Reserve may already hold the message.
			if st, _ := s.q.Stats(ctx); st.Ready+st.Inflight != tc.wantReady {
				t.Fatalf("Stats: got %+v, want Ready+Inflight %d", st, tc.wantReady)
			}

			if tc.fail {
				if ds, err := reserveWithin(t, s.q, 50*time.Millisecond, 10); !errors.Is(err, context.DeadlineExceeded) {
					t.Fatalf("Reserve after rollback: got %q, %v, want nothing", bodies(ds), err)
				}
				cancel()
			}
			select {
			case r := <-blocked:
				switch {
				case tc.fail && !errors.Is(r.err, context.Canceled):
					t.Fatalf("blocked Reserve after rollback: got %q, %v, want %v", bodies(r.ds), r.err, context.Canceled)
				case !tc.fail && (r.err != nil || len(r.ds) != 1 || string(r.ds[0].Body) != "sub-1"):
					t.Fatalf("blocked Reserve after commit: got %q, %v, want [sub-1]", bodies(r.ds), r.err)
				}
			case <-time.After(10 * time.Second):
				t.Fatal("blocked Reserve not woken")
			}
		})
	}
}

func TestBoltEnqueueTxNeedsWritableTx(t *testing.T) {
	s, _ := newTestBolt(t, nil)
	err := s.db.View(func(tx *bbolt.Tx) error {
		return s.q.EnqueueTx(tx, queue.Message{Priority: queue.Normal, Body: []byte("x")})
	})
	if err == nil {
		t.Fatal("EnqueueTx in a read-only transaction: got nil error")
	}
}

func TestBoltEnqueueRejectsUnknownPriority(t *testing.T) {
	s, _ := newTestBolt(t, nil)
	err := s.q.Enqueue(context.Background(), queue.Message{Priority: 7})
	if err == nil {
		t.Fatal("Enqueue with priority 7: got nil error")
	}
	if st, _ := s.q.Stats(context.Background()); st != (queue.Stats{}) {
		t.Fatalf("Stats: got %+v, want empty", st)
	}
}

// A restarted process owns no leases: reserved messages are ready at once, without
// waiting for the visibility timeout.
func TestBoltRestartVoidsLeasesAtOnce(t *testing.T) {
	s, _ := newTestBolt(t, nil)
	ctx := context.Background()
	if err := s.q.Enqueue(ctx, queue.Message{Priority: queue.Normal, Body: []byte("a")}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.q.Reserve(ctx, 1); err != nil {
		t.Fatal(err)
	}
	q := s.reopen(t)
	if st, _ := q.Stats(ctx); st != (queue.Stats{Ready: 1}) {
		t.Fatalf("Stats after restart: got %+v, want Ready 1", st)
	}
	ds, err := reserveWithin(t, q, 10*time.Second, 1)
	if err != nil || len(ds) != 1 || string(ds[0].Body) != "a" {
		t.Fatalf("Reserve after restart: got %q, %v, want [a]", bodies(ds), err)
	}
}

func TestBoltClose(t *testing.T) {
	s, _ := newTestBolt(t, func(o *queue.BoltOptions) { o.PollInterval = time.Hour })
	ctx := context.Background()
	if err := s.q.Enqueue(ctx, queue.Message{Priority: queue.Normal, Body: []byte("a")}); err != nil {
		t.Fatal(err)
	}
	held, err := s.q.Reserve(ctx, 1)
	if err != nil {
		t.Fatal(err)
	}
	blocked := make(chan error, 1)
	go func() {
		_, err := s.q.Reserve(ctx, 1)
		blocked <- err
	}()
	if err := s.q.Close(); err != nil {
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
	if _, err := s.q.Reserve(ctx, 1); !errors.Is(err, queue.ErrClosed) {
		t.Fatalf("Reserve after Close: got %v, want %v", err, queue.ErrClosed)
	}
	// Deliveries in progress can still be settled during shutdown.
	if err := s.q.Ack(ctx, held...); err != nil {
		t.Fatalf("Ack after Close: %v", err)
	}
	if st, _ := s.q.Stats(ctx); st != (queue.Stats{}) {
		t.Fatalf("Stats: got %+v, want empty", st)
	}
	if err := s.q.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
}

// A wall clock set back must not hide messages enqueued afterwards behind those
// already reserved.
func TestBoltClockSetBack(t *testing.T) {
	s, clock := newTestBolt(t, nil)
	ctx := context.Background()
	for _, b := range []string{"a", "b"} {
		if err := s.q.Enqueue(ctx, queue.Message{Priority: queue.Normal, Body: []byte(b)}); err != nil {
			t.Fatal(err)
		}
	}
	if ds, err := s.q.Reserve(ctx, 2); err != nil || len(ds) != 2 {
		t.Fatalf("Reserve: got %q, %v", bodies(ds), err)
	}
	clock.Advance(-time.Hour)
	if err := s.q.Enqueue(ctx, queue.Message{Priority: queue.Normal, Body: []byte("c")}); err != nil {
		t.Fatal(err)
	}
	ds, err := reserveWithin(t, s.q, 10*time.Second, 10)
	if err != nil || len(ds) != 1 || string(ds[0].Body) != "c" {
		t.Fatalf("Reserve after the clock was set back: got %q, %v, want [c]", bodies(ds), err)
	}
}

// An expired lease is redelivered before younger messages of its lane, even when many
// other messages stay reserved ahead of it.
func TestBoltExpiredLeaseComesFirst(t *testing.T) {
	s, clock := newTestBolt(t, func(o *queue.BoltOptions) { o.Visibility = time.Minute })
	ctx := context.Background()
	if err := s.q.Enqueue(ctx, queue.Message{Priority: queue.Normal, Body: []byte("old")}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.q.Reserve(ctx, 1); err != nil {
		t.Fatal(err)
	}
	clock.Advance(30 * time.Second)
	var msgs []queue.Message
	for i := range 50 {
		msgs = append(msgs, queue.Message{Priority: queue.Normal, Body: []byte(fmt.Sprintf("m%02d", i))})
	}
	if err := s.q.Enqueue(ctx, msgs...); err != nil {
		t.Fatal(err)
	}
	if ds, err := s.q.Reserve(ctx, 40); err != nil || len(ds) != 40 {
		t.Fatalf("Reserve(40): got %d, %v", len(ds), err)
	}
	clock.Advance(31 * time.Second) // "old" expired, the 40 not
	ds, err := s.q.Reserve(ctx, 3)
	if got, want := strings.Join(bodies(ds), ","), "old,m40,m41"; err != nil || got != want {
		t.Fatalf("Reserve(3): got %s, %v, want %s", got, err, want)
	}
	if st, _ := s.q.Stats(ctx); st != (queue.Stats{Ready: 8, Inflight: 43}) {
		t.Fatalf("Stats: got %+v, want Ready 8 Inflight 43", st)
	}
}

func TestNewBolt(t *testing.T) {
	db := openDB(t, filepath.Join(t.TempDir(), "x.db"))
	t.Cleanup(func() { db.Close() })
	for _, tc := range []struct {
		name    string
		db      *bbolt.DB
		opts    queue.BoltOptions
		wantErr bool
	}{
		{"defaults", db, queue.BoltOptions{}, false},
		{"nil db", nil, queue.BoltOptions{}, true},
		{"negative visibility", db, queue.BoltOptions{Visibility: -time.Second}, true},
		{"negative max attempts", db, queue.BoltOptions{MaxAttempts: -1}, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			q, err := queue.NewBolt(tc.db, tc.opts)
			if (err != nil) != tc.wantErr {
				t.Fatalf("NewBolt: got error %v, want error %v", err, tc.wantErr)
			}
			if q != nil {
				if err := q.Ping(context.Background()); err != nil {
					t.Fatalf("Ping: %v", err)
				}
			}
		})
	}
	// Every bucket the queue made is named "queue.*".
	err := db.View(func(tx *bbolt.Tx) error {
		return tx.ForEach(func(name []byte, _ *bbolt.Bucket) error {
			if !strings.HasPrefix(string(name), "queue.") {
				return fmt.Errorf("bucket %q is not named queue.*", name)
			}
			return nil
		})
	})
	if err != nil {
		t.Fatal(err)
	}
}

func TestPingClosedDB(t *testing.T) {
	s, _ := newTestBolt(t, nil)
	if err := s.q.Ping(context.Background()); err != nil {
		t.Fatalf("Ping: %v", err)
	}
	s.close(t)
	if err := s.q.Ping(context.Background()); err == nil {
		t.Fatal("Ping with the db closed: got nil error")
	}
}

func TestBackoff(t *testing.T) {
	for _, tc := range []struct {
		attempts  int
		base, max time.Duration
		want      time.Duration
	}{
		{0, time.Second, time.Minute, time.Second},
		{1, time.Second, time.Minute, time.Second},
		{2, time.Second, time.Minute, 2 * time.Second},
		{4, time.Second, time.Minute, 8 * time.Second},
		{7, time.Second, time.Minute, time.Minute},
		{1000, time.Second, time.Minute, time.Minute},
		{1, time.Hour, time.Minute, time.Minute},
	} {
		if got := queue.Backoff(tc.attempts, tc.base, tc.max); got != tc.want {
			t.Errorf("Backoff(%d, %v, %v): got %v, want %v", tc.attempts, tc.base, tc.max, got, tc.want)
		}
	}
}
