package preferences_test

import (
	"context"
	"errors"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"go.etcd.io/bbolt"

	"consentmail/preferences"
	"consentmail/queue/queuetest"
)

// testSecret is the root secret of every test store unless a test needs another.
var testSecret = []byte("preferences-test-secret-0123456789abcdef")

// epoch is where every fake clock starts.
var epoch = time.Date(2026, 3, 14, 9, 26, 53, 0, time.UTC)

// newClock returns the injected clock tests move by hand (the store reads it from its
// committer goroutine; queuetest's clock is safe for that).
func newClock() *queuetest.Clock { return queuetest.NewClock(epoch) }

// testStore is a Store over a real bbolt file, with what tests need to reopen it or
// look at its bytes.
type testStore struct {
	*preferences.Store
	db     *bbolt.DB
	path   string
	secret []byte
	clock  *queuetest.Clock
	closed bool
}

func openDB(tb testing.TB, path string) *bbolt.DB {
	tb.Helper()
	db, err := bbolt.Open(path, 0o600, &bbolt.Options{Timeout: time.Second})
	if err != nil {
		tb.Fatalf("open %s: %v", path, err)
	}
	return db
}

// newStore opens a consent book in a fresh bbolt file under tb.TempDir, closed at cleanup.
func newStore(tb testing.TB) *testStore {
	tb.Helper()
	return newStoreWith(tb, filepath.Join(tb.TempDir(), "consentmail.db"), testSecret)
}

func newStoreWith(tb testing.TB, path string, secret []byte) *testStore {
	tb.Helper()
	s := &testStore{path: path, secret: secret, clock: newClock()}
	s.open(tb)
	tb.Cleanup(func() { s.close(tb) })
	return s
}

func (s *testStore) open(tb testing.TB) {
	tb.Helper()
	s.db = openDB(tb, s.path)
	st, err := preferences.New(s.db, s.secret, s.clock.Now)
	if err != nil {
		tb.Fatalf("preferences.New: %v", err)
	}
	s.Store, s.closed = st, false
}

// close closes the store and its database; closing twice is a no-op.
func (s *testStore) close(tb testing.TB) {
	tb.Helper()
	if s.closed {
		return
	}
	s.closed = true
	if err := s.Store.Close(); err != nil {
		tb.Errorf("Store.Close: %v", err)
	}
	if err := s.db.Close(); err != nil {
		tb.Errorf("bbolt Close: %v", err)
	}
}

// reopen closes the store and the database and opens both again on the same file.
func (s *testStore) reopen(tb testing.TB) {
	tb.Helper()
	s.close(tb)
	s.open(tb)
}

// rawUpdate changes the database underneath the store, as an attacker with the file would.
func (s *testStore) rawUpdate(tb testing.TB, fn func(tx *bbolt.Tx) error) {
	tb.Helper()
	s.close(tb)
	db := openDB(tb, s.path)
	if err := db.Update(fn); err != nil {
		tb.Fatalf("raw update: %v", err)
	}
	if err := db.Close(); err != nil {
		tb.Fatalf("raw close: %v", err)
	}
	s.open(tb)
}

// bucketLen counts the keys of a bucket, 0 if it does not exist.
func (s *testStore) bucketLen(tb testing.TB, name string) int {
	tb.Helper()
	n := 0
	err := s.db.View(func(tx *bbolt.Tx) error {
		b := tx.Bucket([]byte(name))
		if b == nil {
			return nil
		}
		return b.ForEach(func(_, _ []byte) error { n++; return nil })
	})
	if err != nil {
		tb.Fatalf("count %s: %v", name, err)
	}
	return n
}

// listOpts changes a list before it is created.
type listOpts func(*preferences.List)

func private(l *preferences.List) { l.Public = false }

func mustCreateList(tb testing.TB, s *testStore, id string, opts ...listOpts) preferences.List {
	tb.Helper()
	l := preferences.List{ID: id, Name: "List " + id, Purpose: "news about " + id,
		ConsentText: "Yes, send me " + id, PrivacyURL: "https://example.org/privacy", Public: true}
	for _, o := range opts {
		o(&l)
	}
	got, err := s.CreateList(context.Background(), l)
	if err != nil {
		tb.Fatalf("CreateList(%s): %v", id, err)
	}
	return got
}

// signupInput is a signup for addr to lists with distinct personal data.
func signupInput(addr string, lists ...string) preferences.SignupInput {
	return preferences.SignupInput{Email: addr, IndexKey: strings.ToLower(addr), Name: "Name of " + addr,
		Locale: "en", Lists: lists, Source: "test", IP: "192.0.2.1", UserAgent: "test-agent/1.0"}
}

// noEnqueue is an EnqueueTx that queues nothing.
func noEnqueue(*bbolt.Tx, preferences.OptinRequest) error { return nil }

// recorder is an EnqueueTx that remembers every request it was given.
type recorder struct {
	mu   sync.Mutex
	reqs []preferences.OptinRequest
}

func (r *recorder) enqueue(_ *bbolt.Tx, req preferences.OptinRequest) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.reqs = append(r.reqs, req)
	return nil
}

func (r *recorder) calls() []preferences.OptinRequest {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]preferences.OptinRequest(nil), r.reqs...)
}

// last returns the latest request; it fails the test when there is none.
func (r *recorder) last(tb testing.TB) preferences.OptinRequest {
	tb.Helper()
	c := r.calls()
	if len(c) == 0 {
		tb.Fatalf("enqueue was never called")
	}
	return c[len(c)-1]
}

// mustSignup signs addr up and returns the opt-in request it queued (zero if none).
func mustSignup(tb testing.TB, s *testStore, in preferences.SignupInput) preferences.OptinRequest {
	tb.Helper()
	var rec recorder
	if err := s.Signup(context.Background(), in, rec.enqueue); err != nil {
		tb.Fatalf("Signup(%s): %v", in.Email, err)
	}
	if c := rec.calls(); len(c) > 0 {
		return c[len(c)-1]
	}
	return preferences.OptinRequest{}
}

func mustConfirm(tb testing.TB, s *testStore, req preferences.OptinRequest) preferences.ConfirmResult {
	tb.Helper()
	res, err := s.Confirm(context.Background(), preferences.ConfirmInput{Subscriber: req.Subscriber, Lists: req.Lists,
		Nonce: req.Nonce, IP: "198.51.100.2", UserAgent: "confirm-agent/2.0"})
	if err != nil {
		tb.Fatalf("Confirm(%+v): %v", req, err)
	}
	return res
}

// allEvents reads the whole ledger matching q, page by page.
func allEvents(tb testing.TB, s *testStore, q preferences.LedgerQuery) []preferences.Event {
	tb.Helper()
	var out []preferences.Event
	if q.Limit == 0 {
		q.Limit = 1000
	}
	for {
		page, next, err := s.Ledger(context.Background(), q)
		if err != nil {
			tb.Fatalf("Ledger(%+v): %v", q, err)
		}
		out = append(out, page...)
		if next == 0 {
			return out
		}
		q.After = next
	}
}

// subscribersInLedger counts the signup events of each subscriber.
func subscribersInLedger(tb testing.TB, s *testStore) map[string]int {
	tb.Helper()
	subs := map[string]int{}
	for _, e := range allEvents(tb, s, preferences.LedgerQuery{Type: preferences.EventSignup}) {
		subs[e.Subscriber]++
	}
	return subs
}

func mustVerify(tb testing.TB, s *testStore) preferences.VerifyResult {
	tb.Helper()
	res, err := s.VerifyLedger(context.Background())
	if err != nil {
		tb.Fatalf("VerifyLedger: %v", err)
	}
	return res
}

var errEnqueue = errors.New("queue unavailable")

// Erase erases through the one erasure, without queues.
func (s *testStore) Erase(ctx context.Context, subscriber, actor string) (preferences.ErasureReceipt, error) {
	return preferences.NewEraser(s.Store, nil, nil).Erase(ctx, subscriber, actor)
}

// ApplyRetention runs one retention pass through the one erasure, without queues.
func (s *testStore) ApplyRetention(ctx context.Context, p preferences.RetentionPolicy) (preferences.RetentionResult, error) {
	return preferences.NewEraser(s.Store, nil, nil).ApplyRetention(ctx, p)
}
