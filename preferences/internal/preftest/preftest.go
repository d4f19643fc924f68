// Package preftest holds the test helpers of the consent book and its adapters, written
// once: a Store over a real bbolt file in a temp dir with an injected clock, lists,
// signups and confirmations, the whole ledger, and (http.go) a Fiber app with the
// contract's error shape and a client for it. Helpers take testing.TB and fail the
// test on any error.
package preftest

import (
	"context"
	"encoding/binary"
	"errors"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"go.etcd.io/bbolt"

	"consentmail/preferences"
	"consentmail/queue/queuetest"
)

// Secret is the root secret of every test store unless a test needs another.
var Secret = []byte("preferences-test-secret-0123456789abcdef")

// Epoch is where every fake clock starts.
var Epoch = time.Date(2026, 3, 14, 9, 26, 53, 0, time.UTC)

// ErrEnqueue is the error of a queue that is down.
var ErrEnqueue = errors.New("queue unavailable")

// NewClock returns the injected clock tests move by hand (the store reads it from its
// committer goroutine; queuetest's clock is safe for that).
func NewClock() *queuetest.Clock { return queuetest.NewClock(Epoch) }

// Store is a Store over a real bbolt file, with what tests need to reopen it or look
// at its bytes.
type Store struct {
	*preferences.Store
	DB     *bbolt.DB
	Path   string
	Secret []byte // the root secret Open uses
	Clock  *queuetest.Clock
	Closed bool // the store and its database are closed: CloseDB does nothing
	// Options are given to preferences.New at every Open.
	Options []preferences.Option
}

// OpenDB opens the bbolt file at path as cmd does.
func OpenDB(tb testing.TB, path string) *bbolt.DB {
	tb.Helper()
	db, err := bbolt.Open(path, 0o600, preferences.BoltOptions())
	if err != nil {
		tb.Fatalf("open %s: %v", path, err)
	}
	return db
}

// NewStore opens a consent book in a fresh bbolt file under tb.TempDir, closed at cleanup.
func NewStore(tb testing.TB) *Store {
	tb.Helper()
	return NewStoreWith(tb, filepath.Join(tb.TempDir(), "consentmail.db"), Secret)
}

// NewStoreWith opens a consent book in the file at path with secret, closed at cleanup.
func NewStoreWith(tb testing.TB, path string, secret []byte, opts ...preferences.Option) *Store {
	tb.Helper()
	s := &Store{Path: path, Secret: secret, Clock: NewClock(), Options: opts}
	s.Open(tb)
	tb.Cleanup(func() { s.CloseDB(tb) })
	return s
}

// Open opens the database and the store on s.Path with s.Secret.
func (s *Store) Open(tb testing.TB) {
	tb.Helper()
	s.DB = OpenDB(tb, s.Path)
	st, err := preferences.New(s.DB, s.Secret, s.Clock.Now, s.Options...)
	if err != nil {
		tb.Fatalf("preferences.New: %v", err)
	}
	s.Store, s.Closed = st, false
}

// CloseDB closes the store and its database; closing twice is a no-op.
func (s *Store) CloseDB(tb testing.TB) {
	tb.Helper()
	if s.Closed {
		return
	}
	s.Closed = true
	if err := s.Store.Close(); err != nil {
		tb.Errorf("Store.Close: %v", err)
	}
	if err := s.DB.Close(); err != nil {
		tb.Errorf("bbolt Close: %v", err)
	}
}

// Reopen closes the store and the database and opens both again on the same file.
func (s *Store) Reopen(tb testing.TB) {
	tb.Helper()
	s.CloseDB(tb)
	s.Open(tb)
}

// RawUpdate changes the database underneath the store, as an attacker with the file would.
func (s *Store) RawUpdate(tb testing.TB, fn func(tx *bbolt.Tx) error) {
	tb.Helper()
	s.CloseDB(tb)
	db := OpenDB(tb, s.Path)
	if err := db.Update(fn); err != nil {
		tb.Fatalf("raw update: %v", err)
	}
	if err := db.Close(); err != nil {
		tb.Fatalf("raw close: %v", err)
	}
	s.Open(tb)
}

// LedgerBucket is the name of the ledger's bucket, for tests that tamper with it.
const LedgerBucket = "prefs.ledger"

// SeqKey is the key of ledger event seq.
func SeqKey(seq uint64) []byte { return binary.BigEndian.AppendUint64(nil, seq) }

// BucketLen counts the keys of a bucket, 0 if it does not exist.
func (s *Store) BucketLen(tb testing.TB, name string) int {
	tb.Helper()
	n := 0
	err := s.DB.View(func(tx *bbolt.Tx) error {
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

// ListOpt changes a list before it is created.
type ListOpt func(*preferences.List)

// Private makes a list private.
func Private(l *preferences.List) { l.Public = false }

// CreateList creates the public list id with a name, purpose, consent text and
// privacy notice derived from id.
func CreateList(tb testing.TB, s *Store, id string, opts ...ListOpt) preferences.List {
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

// SignupInput is a signup for addr to lists with distinct personal data.
func SignupInput(addr string, lists ...string) preferences.SignupInput {
	return preferences.SignupInput{Email: addr, IndexKey: strings.ToLower(addr), Name: "Name of " + addr,
		Locale: "en", Lists: lists, Source: "test", IP: "192.0.2.1", UserAgent: "test-agent/1.0"}
}

// NoEnqueue is an EnqueueTx that queues nothing.
func NoEnqueue(*bbolt.Tx, preferences.OptinRequest) error { return nil }

// Log records values from any goroutine: what a fake was asked to do.
type Log[T any] struct {
	mu sync.Mutex
	v  []T
}

// Add records v.
func (l *Log[T]) Add(v T) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.v = append(l.v, v)
}

// All returns the values recorded, oldest first.
func (l *Log[T]) All() []T {
	l.mu.Lock()
	defer l.mu.Unlock()
	return slices.Clone(l.v)
}

// Recorder is an EnqueueTx (its Enqueue method) that remembers every request it was given.
type Recorder struct{ reqs Log[preferences.OptinRequest] }

// Enqueue records req.
func (r *Recorder) Enqueue(_ *bbolt.Tx, req preferences.OptinRequest) error {
	r.reqs.Add(req)
	return nil
}

// Calls returns the requests recorded, oldest first.
func (r *Recorder) Calls() []preferences.OptinRequest { return r.reqs.All() }

// Last returns the latest request; it fails the test when there is none.
func (r *Recorder) Last(tb testing.TB) preferences.OptinRequest {
	tb.Helper()
	c := r.Calls()
	if len(c) == 0 {
		tb.Fatalf("enqueue was never called")
	}
	return c[len(c)-1]
}

// Signup signs addr up and returns the opt-in request it queued (zero if none).
func Signup(tb testing.TB, s *Store, in preferences.SignupInput) preferences.OptinRequest {
	tb.Helper()
	var rec Recorder
	if err := s.Signup(context.Background(), in, rec.Enqueue); err != nil {
		tb.Fatalf("Signup(%s): %v", in.Email, err)
	}
	if c := rec.Calls(); len(c) > 0 {
		return c[len(c)-1]
	}
	return preferences.OptinRequest{}
}

// Confirm confirms the opt-in round req.
func Confirm(tb testing.TB, s *Store, req preferences.OptinRequest) preferences.ConfirmResult {
	tb.Helper()
	res, err := s.Confirm(context.Background(), preferences.ConfirmInput{Subscriber: req.Subscriber, Lists: req.Lists,
		Nonce: req.Nonce, IP: "198.51.100.2", UserAgent: "confirm-agent/2.0"})
	if err != nil {
		tb.Fatalf("Confirm(%+v): %v", req, err)
	}
	return res
}

// Subscribed signs addr up to lists and confirms, and returns the subscriber's id.
func Subscribed(tb testing.TB, s *Store, addr string, lists ...string) string {
	tb.Helper()
	req := Signup(tb, s, SignupInput(addr, lists...))
	Confirm(tb, s, req)
	return req.Subscriber
}

// AllEvents reads the whole ledger matching q, page by page.
func AllEvents(tb testing.TB, s *Store, q preferences.LedgerQuery) []preferences.Event {
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

// SubscribersInLedger counts the signup events of each subscriber.
func SubscribersInLedger(tb testing.TB, s *Store) map[string]int {
	tb.Helper()
	subs := map[string]int{}
	for _, e := range AllEvents(tb, s, preferences.LedgerQuery{Type: preferences.EventSignup}) {
		subs[e.Subscriber]++
	}
	return subs
}

// Verify verifies the ledger.
func Verify(tb testing.TB, s *Store) preferences.VerifyResult {
	tb.Helper()
	res, err := s.VerifyLedger(context.Background())
	if err != nil {
		tb.Fatalf("VerifyLedger: %v", err)
	}
	return res
}

// Erase erases through the one erasure, without queues.
func (s *Store) Erase(ctx context.Context, subscriber, actor string) (preferences.ErasureReceipt, error) {
	return preferences.NewEraser(s.Store, nil, nil).Erase(ctx, subscriber, actor)
}

// ApplyRetention runs one retention pass through the one erasure, without queues.
func (s *Store) ApplyRetention(ctx context.Context, p preferences.RetentionPolicy) (preferences.RetentionResult, error) {
	return preferences.NewEraser(s.Store, nil, nil).ApplyRetention(ctx, p)
}
