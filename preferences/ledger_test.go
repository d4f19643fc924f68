package preferences_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"slices"
	"testing"
	"time"

	"go.etcd.io/bbolt"

	"consentmail/preferences"
)

// ledgerFixture writes six events:
//
//	1 signup a   2 signup b   3 confirmed a   4 signup c   5 confirmed b   6 confirmation_sent c
type ledgerFixture struct {
	s          *testStore
	a, b, c    preferences.OptinRequest
	wantEvents uint64
}

func newLedgerFixture(tb testing.TB) *ledgerFixture {
	tb.Helper()
	s := newStore(tb)
	mustCreateList(tb, s, "news")
	f := &ledgerFixture{s: s}
	f.a = mustSignup(tb, s, signupInput("alice@example.org", "news"))
	f.b = mustSignup(tb, s, signupInput("bob@example.org", "news"))
	mustConfirm(tb, s, f.a)
	f.c = mustSignup(tb, s, signupInput("carol@example.org", "news"))
	mustConfirm(tb, s, f.b)
	if err := s.RecordConfirmationSent(context.Background(), f.c, "<msg-c@example.org>"); err != nil {
		tb.Fatalf("RecordConfirmationSent: %v", err)
	}
	f.wantEvents = 6
	return f
}

// rehash recomputes the stored hash of an event value after its body or prev changed,
// as the package doc describes it: SHA-256 over the big-endian sequence number, the
// previous hash and the body.
func rehash(seq uint64, v []byte) {
	h := sha256.New()
	h.Write(seqKey(seq))
	h.Write(v[:32])
	h.Write(v[64:])
	copy(v[32:64], h.Sum(nil))
}

func TestVerifyLedgerIntact(t *testing.T) {
	f := newLedgerFixture(t)
	res := mustVerify(t, f.s)
	events := allEvents(t, f.s, preferences.LedgerQuery{})
	if !res.OK || res.Events != f.wantEvents || res.FirstBadSeq != 0 {
		t.Fatalf("VerifyLedger = %+v, want OK with %d events", res, f.wantEvents)
	}
	if got, want := res.Head, events[len(events)-1].Hash; got != want {
		t.Errorf("head = %s, want hash of the last event %s", got, want)
	}
	prev := hex.EncodeToString(make([]byte, 32))
	for i, e := range events {
		if e.Seq != uint64(i+1) {
			t.Errorf("event %d has seq %d", i+1, e.Seq)
		}
		if e.PrevHash != prev {
			t.Errorf("event %d prev_hash = %s, want %s", e.Seq, e.PrevHash, prev)
		}
		prev = e.Hash
	}
	// The chain must survive a restart unchanged.
	f.s.Reopen(t)
	if again := mustVerify(t, f.s); again != res {
		t.Errorf("after reopen VerifyLedger = %+v, want %+v", again, res)
	}
}

func TestVerifyLedgerEmpty(t *testing.T) {
	s := newStore(t)
	res := mustVerify(t, s)
	if !res.OK || res.Events != 0 || res.Head != hex.EncodeToString(make([]byte, 32)) {
		t.Errorf("VerifyLedger on empty ledger = %+v, want OK, 0 events, zero head", res)
	}
}

func TestVerifyLedgerDetectsTampering(t *testing.T) {
	tests := []struct {
		name   string
		tamper func(tb testing.TB, b *bbolt.Bucket)
		want   uint64 // first bad seq
	}{
		{"body byte of event 3", func(tb testing.TB, b *bbolt.Bucket) {
			v := get(tb, b, 3)
			v[64+10] ^= 0x01
			put(tb, b, 3, v)
		}, 3},
		{"last body byte of event 3", func(tb testing.TB, b *bbolt.Bucket) {
			v := get(tb, b, 3)
			v[len(v)-1] ^= 0x20
			put(tb, b, 3, v)
		}, 3},
		{"stored hash of event 3", func(tb testing.TB, b *bbolt.Bucket) {
			v := get(tb, b, 3)
			v[40] ^= 0xff
			put(tb, b, 3, v)
		}, 3},
		{"prev hash of event 3", func(tb testing.TB, b *bbolt.Bucket) {
			v := get(tb, b, 3)
			v[0] ^= 0x80
			put(tb, b, 3, v)
		}, 3},
		{"event 3 deleted (gap)", func(tb testing.TB, b *bbolt.Bucket) {
			if err := b.Delete(seqKey(3)); err != nil {
				tb.Fatal(err)
			}
		}, 3},
		{"events 2 and 3 swapped", func(tb testing.TB, b *bbolt.Bucket) {
			v2, v3 := get(tb, b, 2), get(tb, b, 3)
			put(tb, b, 2, v3)
			put(tb, b, 3, v2)
		}, 2},
		{"prev hash of event 1", func(tb testing.TB, b *bbolt.Bucket) {
			v := get(tb, b, 1)
			v[31] = 0x01
			put(tb, b, 1, v)
		}, 1},
		{"event 1 deleted", func(tb testing.TB, b *bbolt.Bucket) {
			if err := b.Delete(seqKey(1)); err != nil {
				tb.Fatal(err)
			}
		}, 1},
		{"event 4 truncated", func(tb testing.TB, b *bbolt.Bucket) {
			put(tb, b, 4, get(tb, b, 4)[:40])
		}, 4},
		{"event 3 body changed and re-hashed", func(tb testing.TB, b *bbolt.Bucket) {
			v := get(tb, b, 3)
			v = append(v[:len(v):len(v)], ' ')
			rehash(3, v)
			put(tb, b, 3, v)
		}, 4},
		{"event inserted with a bad key", func(tb testing.TB, b *bbolt.Bucket) {
			if err := b.Put(append(seqKey(2), 0), get(tb, b, 3)); err != nil {
				tb.Fatal(err)
			}
		}, 3},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f := newLedgerFixture(t)
			before := allEvents(t, f.s, preferences.LedgerQuery{})
			f.s.RawUpdate(t, func(tx *bbolt.Tx) error {
				tc.tamper(t, tx.Bucket([]byte(ledgerBucket)))
				return nil
			})
			res := mustVerify(t, f.s)
			if res.OK {
				t.Fatalf("VerifyLedger = %+v, want OK=false", res)
			}
			if res.FirstBadSeq != tc.want {
				t.Errorf("FirstBadSeq = %d, want %d (reason %q)", res.FirstBadSeq, tc.want, res.Reason)
			}
			if res.Reason == "" {
				t.Errorf("Reason is empty, want an explanation")
			}
			if got, want := res.Events, tc.want-1; got != want {
				t.Errorf("Events = %d, want %d verified before the bad one", got, want)
			}
			// The head is the stored hash of the last good event (which the re-hash
			// case forged consistently, so it is read back rather than taken from before).
			wantHead := hex.EncodeToString(make([]byte, 32))
			if tc.want > 1 {
				err := f.s.DB.View(func(tx *bbolt.Tx) error {
					wantHead = hex.EncodeToString(get(t, tx.Bucket([]byte(ledgerBucket)), tc.want-1)[32:64])
					return nil
				})
				if err != nil {
					t.Fatal(err)
				}
				if tc.want-1 < 3 && wantHead != before[tc.want-2].Hash {
					t.Errorf("untouched event %d changed its hash", tc.want-1)
				}
			}
			if res.Head != wantHead {
				t.Errorf("Head = %s, want hash of the last good event %s", res.Head, wantHead)
			}
		})
	}
}

// The package documents that dropping the newest events is detectable only against a
// head recorded elsewhere: the chain still verifies but its head changes.
func TestVerifyLedgerTruncatedTailChangesHead(t *testing.T) {
	f := newLedgerFixture(t)
	orig := mustVerify(t, f.s)
	f.s.RawUpdate(t, func(tx *bbolt.Tx) error {
		return tx.Bucket([]byte(ledgerBucket)).Delete(seqKey(f.wantEvents))
	})
	res := mustVerify(t, f.s)
	if !res.OK || res.Events != f.wantEvents-1 {
		t.Fatalf("VerifyLedger = %+v, want OK with %d events", res, f.wantEvents-1)
	}
	if res.Head == orig.Head {
		t.Errorf("head unchanged (%s) after the last event was removed", res.Head)
	}
}

// rehash must match the store's own hashing, or the re-hash case above proves nothing.
func TestRehashMatchesStore(t *testing.T) {
	f := newLedgerFixture(t)
	err := f.s.DB.View(func(tx *bbolt.Tx) error {
		v := tx.Bucket([]byte(ledgerBucket)).Get(seqKey(3))
		c := bytes.Clone(v)
		rehash(3, c)
		if !bytes.Equal(c, v) {
			t.Errorf("recomputed hash %x, stored %x", c[32:64], v[32:64])
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

func get(tb testing.TB, b *bbolt.Bucket, seq uint64) []byte {
	tb.Helper()
	v := b.Get(seqKey(seq))
	if v == nil {
		tb.Fatalf("event %d missing", seq)
	}
	return bytes.Clone(v)
}

func put(tb testing.TB, b *bbolt.Bucket, seq uint64, v []byte) {
	tb.Helper()
	if err := b.Put(seqKey(seq), v); err != nil {
		tb.Fatalf("put event %d: %v", seq, err)
	}
}

func TestLedgerFilters(t *testing.T) {
	f := newLedgerFixture(t)
	tests := []struct {
		name     string
		q        preferences.LedgerQuery
		wantSeqs []uint64
	}{
		{"all", preferences.LedgerQuery{}, []uint64{1, 2, 3, 4, 5, 6}},
		{"subscriber a", preferences.LedgerQuery{Subscriber: f.a.Subscriber}, []uint64{1, 3}},
		{"subscriber c", preferences.LedgerQuery{Subscriber: f.c.Subscriber}, []uint64{4, 6}},
		{"type signup", preferences.LedgerQuery{Type: preferences.EventSignup}, []uint64{1, 2, 4}},
		{"type confirmed", preferences.LedgerQuery{Type: preferences.EventConfirmed}, []uint64{3, 5}},
		{"subscriber b confirmed", preferences.LedgerQuery{Subscriber: f.b.Subscriber, Type: preferences.EventConfirmed}, []uint64{5}},
		{"after 3", preferences.LedgerQuery{After: 3}, []uint64{4, 5, 6}},
		{"subscriber a after 1", preferences.LedgerQuery{Subscriber: f.a.Subscriber, After: 1}, []uint64{3}},
		{"unknown subscriber", preferences.LedgerQuery{Subscriber: "sub_nobody"}, nil},
		{"unknown type", preferences.LedgerQuery{Type: "nope"}, nil},
		{"past the end", preferences.LedgerQuery{After: 6}, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := allEvents(t, f.s, tc.q)
			var seqs []uint64
			for _, e := range got {
				seqs = append(seqs, e.Seq)
				if tc.q.Subscriber != "" && e.Subscriber != tc.q.Subscriber {
					t.Errorf("event %d subscriber = %s, want %s", e.Seq, e.Subscriber, tc.q.Subscriber)
				}
				if tc.q.Type != "" && e.Type != tc.q.Type {
					t.Errorf("event %d type = %s, want %s", e.Seq, e.Type, tc.q.Type)
				}
			}
			if !slices.Equal(seqs, tc.wantSeqs) {
				t.Errorf("seqs = %v, want %v", seqs, tc.wantSeqs)
			}
		})
	}
}

func TestLedgerPagination(t *testing.T) {
	s := newStore(t)
	mustCreateList(t, s, "news")
	var subs []string
	for i := range 7 {
		req := mustSignup(t, s, signupInput("p"+string(rune('a'+i))+"@example.org", "news"))
		mustConfirm(t, s, req)
		subs = append(subs, req.Subscriber)
	}
	// 14 events: signup, confirmed, alternating.
	tests := []struct {
		name  string
		q     preferences.LedgerQuery
		total int
	}{
		{"all by 3", preferences.LedgerQuery{Limit: 3}, 14},
		{"all by 7 (exact pages)", preferences.LedgerQuery{Limit: 7}, 14},
		{"all by 1", preferences.LedgerQuery{Limit: 1}, 14},
		{"confirmed by 2", preferences.LedgerQuery{Type: preferences.EventConfirmed, Limit: 2}, 7},
		{"signups by 7 (exact page, other events after)", preferences.LedgerQuery{Type: preferences.EventSignup, Limit: 7}, 7},
		{"one subscriber by 1", preferences.LedgerQuery{Subscriber: subs[3], Limit: 1}, 2},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			want := allEvents(t, s, preferences.LedgerQuery{Subscriber: tc.q.Subscriber, Type: tc.q.Type})
			if len(want) != tc.total {
				t.Fatalf("unpaginated read has %d events, want %d", len(want), tc.total)
			}
			var got []uint64
			q := tc.q
			for pages := 0; ; pages++ {
				if pages > tc.total+1 {
					t.Fatalf("pagination does not end; got %v so far", got)
				}
				page, next, err := s.Ledger(context.Background(), q)
				if err != nil {
					t.Fatalf("Ledger(%+v): %v", q, err)
				}
				if len(page) > q.Limit {
					t.Errorf("page has %d events, want at most %d", len(page), q.Limit)
				}
				for _, e := range page {
					got = append(got, e.Seq)
				}
				if next == 0 {
					break
				}
				if len(page) == 0 {
					t.Fatalf("empty page with next cursor %d", next)
				}
				if last := page[len(page)-1].Seq; next != last {
					t.Errorf("next cursor = %d, want last seq of the page %d", next, last)
				}
				q.After = next
			}
			var wantSeqs []uint64
			for _, e := range want {
				wantSeqs = append(wantSeqs, e.Seq)
			}
			if !slices.Equal(got, wantSeqs) {
				t.Errorf("paginated seqs = %v, want %v (no duplicates, no gaps)", got, wantSeqs)
			}
		})
	}
}

func TestLedgerEventContents(t *testing.T) {
	s := newStore(t)
	news := mustCreateList(t, s, "news")
	in := signupInput("dora@example.org", "news")
	in.IP, in.UserAgent, in.Source = "2001:db8::42", "Mozilla/5.0 (Ledger test)", "form:news"
	req := mustSignup(t, s, in)
	s.Clock.Advance(90 * time.Second)
	if _, err := s.Confirm(context.Background(), preferences.ConfirmInput{Subscriber: req.Subscriber, Lists: req.Lists,
		Nonce: req.Nonce, IP: "203.0.113.9", UserAgent: "ConfirmBrowser/3"}); err != nil {
		t.Fatalf("Confirm: %v", err)
	}
	events := allEvents(t, s, preferences.LedgerQuery{Subscriber: req.Subscriber})
	if len(events) != 2 {
		t.Fatalf("got %d events, want 2", len(events))
	}
	signup, confirmed := events[0], events[1]
	checks := []struct{ field, got, want string }{
		{"signup type", signup.Type, preferences.EventSignup},
		{"signup ip", signup.IP, in.IP},
		{"signup user agent", signup.UserAgent, in.UserAgent},
		{"signup source", signup.Details["source"], "form:news"},
		{"signup consent version", signup.Details["consent_version.news"], news.ConsentVersion},
		{"signup at", signup.At.Format(time.RFC3339Nano), epoch.Format(time.RFC3339Nano)},
		{"confirmed type", confirmed.Type, preferences.EventConfirmed},
		{"confirmed ip", confirmed.IP, "203.0.113.9"},
		{"confirmed user agent", confirmed.UserAgent, "ConfirmBrowser/3"},
		{"confirmed optin", confirmed.Details["optin"], req.Nonce},
		{"confirmed at", confirmed.At.Format(time.RFC3339Nano), epoch.Add(90 * time.Second).Format(time.RFC3339Nano)},
	}
	for _, c := range checks {
		if c.got != c.want {
			t.Errorf("%s = %q, want %q", c.field, c.got, c.want)
		}
	}
	if !slices.Equal(signup.Lists, []string{"news"}) || !slices.Equal(confirmed.Lists, []string{"news"}) {
		t.Errorf("lists = %v / %v, want [news]", signup.Lists, confirmed.Lists)
	}
	if signup.Erased || confirmed.Erased {
		t.Errorf("events marked erased for a live subscriber")
	}
}

// A confirmation_sent event queued without waiting is durable by the time a write
// queued after it (the queue's acknowledgement of the mail) is: the mail sender needs
// no sync of its own per mail, and a crash never leaves the mail acknowledged and the
// event lost.
func TestQueuedConfirmationSentIsDurableBeforeWhatFollows(t *testing.T) {
	s := newStore(t)
	mustCreateList(t, s, "news")
	ctx := context.Background()
	var reqs []preferences.OptinRequest
	for i := range 20 {
		reqs = append(reqs, mustSignup(t, s, signupInput(fmt.Sprintf("q%d@example.org", i), "news")))
	}
	var dones []<-chan error
	for i, req := range reqs {
		done, err := s.QueueConfirmationSent(ctx, req, fmt.Sprintf("<m%d@example.org>", i))
		if err != nil {
			t.Fatal(err)
		}
		dones = append(dones, done)
		// The acknowledgement that follows: once it is durable, the event must be too.
		if err := s.GroupCommit(ctx, func(*bbolt.Tx) error { return nil }); err != nil {
			t.Fatal(err)
		}
		evs := allEvents(t, s, preferences.LedgerQuery{Subscriber: req.Subscriber, Type: preferences.EventConfirmationSent})
		if len(evs) != 1 {
			t.Fatalf("after the write queued behind it, %d confirmation_sent events for %s, want 1", len(evs), req.Subscriber)
		}
	}
	for _, done := range dones {
		if err := <-done; err != nil {
			t.Errorf("queued event: %v", err)
		}
	}
}
