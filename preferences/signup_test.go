package preferences_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.etcd.io/bbolt"

	"consentmail/preferences"
)

func subscriptionStatus(tb testing.TB, s *testStore, id, list string) string {
	tb.Helper()
	sub, err := s.Subscriber(context.Background(), id)
	if err != nil {
		tb.Fatalf("Subscriber(%s): %v", id, err)
	}
	for _, x := range sub.Subscriptions {
		if x.List == list {
			return x.Status
		}
	}
	return ""
}

func TestSignupNewSubscriberIsPending(t *testing.T) {
	s := newStore(t)
	mustCreateList(t, s, "news")
	mustCreateList(t, s, "offers")
	in := signupInput("new@example.org", "news", "offers")
	in.Attributes = []byte(`{"plan":"gold","seats":3}`)
	req := mustSignup(t, s, in)
	if req.Subscriber == "" || req.Nonce == "" {
		t.Fatalf("queued request = %+v, want subscriber and nonce", req)
	}
	if !slices.Equal(req.Lists, []string{"news", "offers"}) {
		t.Errorf("queued lists = %v, want [news offers]", req.Lists)
	}
	sub, err := s.Subscriber(context.Background(), req.Subscriber)
	if err != nil {
		t.Fatal(err)
	}
	if sub.Status != preferences.StatusActive {
		t.Errorf("status = %q, want %q", sub.Status, preferences.StatusActive)
	}
	if sub.Email != in.Email || sub.Name != in.Name || sub.Locale != "en" {
		t.Errorf("profile = %q %q %q, want %q %q en", sub.Email, sub.Name, sub.Locale, in.Email, in.Name)
	}
	if sub.Attributes["plan"] != "gold" || sub.Attributes["seats"] != float64(3) {
		t.Errorf("attributes = %v, want plan=gold seats=3", sub.Attributes)
	}
	want := []preferences.SubscriptionState{
		{List: "news", Status: preferences.SubPending, Since: epoch},
		{List: "offers", Status: preferences.SubPending, Since: epoch},
	}
	if !slices.EqualFunc(sub.Subscriptions, want, func(a, b preferences.SubscriptionState) bool {
		return a.List == b.List && a.Status == b.Status && a.Since.Equal(b.Since)
	}) {
		t.Errorf("subscriptions = %+v, want %+v", sub.Subscriptions, want)
	}
	if !sub.CreatedAt.Equal(epoch) {
		t.Errorf("created = %v, want %v", sub.CreatedAt, epoch)
	}
}

func TestSignupUnknownList(t *testing.T) {
	tests := []struct {
		name  string
		lists []string
		want  string
	}{
		{"missing list", []string{"news", "ghost"}, "ghost"},
		{"private list", []string{"staff"}, "staff"},
		{"private after public", []string{"news", "staff"}, "staff"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := newStore(t)
			mustCreateList(t, s, "news")
			mustCreateList(t, s, "staff", private)
			var rec recorder
			err := s.Signup(context.Background(), signupInput("x@example.org", tc.lists...), rec.Enqueue)
			var ul *preferences.UnknownListError
			if !errors.As(err, &ul) {
				t.Fatalf("Signup error = %v, want *UnknownListError", err)
			}
			if ul.List != tc.want {
				t.Errorf("UnknownListError.List = %q, want %q", ul.List, tc.want)
			}
			if n := len(rec.Calls()); n != 0 {
				t.Errorf("enqueue called %d times, want 0", n)
			}
			assertNothingStored(t, s)
		})
	}
}

// assertNothingStored checks that no subscriber, index entry, key, membership or
// ledger event exists.
func assertNothingStored(tb testing.TB, s *testStore) {
	tb.Helper()
	for _, b := range []string{"prefs.subscribers", "prefs.email_index", "prefs.data_keys", "prefs.members",
		"prefs.ledger", "prefs.ledger_by_subscriber"} {
		if n := s.BucketLen(tb, b); n != 0 {
			tb.Errorf("%s has %d keys, want 0", b, n)
		}
	}
	if res := mustVerify(tb, s); !res.OK || res.Events != 0 {
		tb.Errorf("VerifyLedger = %+v, want OK with 0 events", res)
	}
}

func TestSignupKeepsConfirmedAndProfile(t *testing.T) {
	s := newStore(t)
	mustCreateList(t, s, "news")
	mustCreateList(t, s, "offers")
	first := signupInput("keep@example.org", "news")
	first.Name, first.Locale, first.Attributes = "Original Name", "fr", []byte(`{"tier":"one"}`)
	req := mustSignup(t, s, first)
	mustConfirm(t, s, req)

	s.Clock.Advance(time.Hour)
	later := signupInput("keep@example.org", "news", "offers")
	later.Name, later.Locale, later.Attributes = "Impostor", "en", []byte(`{"tier":"two","evil":true}`)
	var rec recorder
	if err := s.Signup(context.Background(), later, rec.Enqueue); err != nil {
		t.Fatal(err)
	}
	calls := rec.Calls()
	if len(calls) != 1 || !slices.Equal(calls[0].Lists, []string{"offers"}) {
		t.Errorf("enqueued %+v, want one request for [offers] only", calls)
	}
	if got := subscriptionStatus(t, s, req.Subscriber, "news"); got != preferences.SubConfirmed {
		t.Errorf("news = %q after repeated signup, want %q", got, preferences.SubConfirmed)
	}
	if got := subscriptionStatus(t, s, req.Subscriber, "offers"); got != preferences.SubPending {
		t.Errorf("offers = %q, want %q", got, preferences.SubPending)
	}
	sub, err := s.Subscriber(context.Background(), req.Subscriber)
	if err != nil {
		t.Fatal(err)
	}
	if sub.Name != "Original Name" || sub.Locale != "fr" || sub.Attributes["tier"] != "one" || sub.Attributes["evil"] != nil {
		t.Errorf("profile = %q %q %v, want the first signup's \"Original Name\" fr {tier:one}", sub.Name, sub.Locale, sub.Attributes)
	}
	// Only confirmed lists: nothing pending, nothing queued, however long after.
	s.Clock.Advance(time.Hour)
	rec = recorder{}
	if err := s.Signup(context.Background(), signupInput("keep@example.org", "news"), rec.Enqueue); err != nil {
		t.Fatal(err)
	}
	if n := len(rec.Calls()); n != 0 {
		t.Errorf("signup to a confirmed list enqueued %d times, want 0", n)
	}
	if got := subscriptionStatus(t, s, req.Subscriber, "news"); got != preferences.SubConfirmed {
		t.Errorf("news = %q, want %q", got, preferences.SubConfirmed)
	}
}

func TestSignupResendInterval(t *testing.T) {
	s := newStore(t)
	mustCreateList(t, s, "news")
	var rec recorder
	steps := []struct {
		advance time.Duration
		want    int // total enqueue calls after the signup
	}{
		{0, 1},
		{time.Minute, 1},
		{preferences.OptinResendInterval - time.Minute - time.Nanosecond, 1},
		{time.Nanosecond, 2}, // exactly OptinResendInterval after the first
		{time.Second, 2},
		{preferences.OptinResendInterval, 3},
	}
	for i, st := range steps {
		s.Clock.Advance(st.advance)
		if err := s.Signup(context.Background(), signupInput("again@example.org", "news"), rec.Enqueue); err != nil {
			t.Fatalf("signup %d: %v", i, err)
		}
		if got := len(rec.Calls()); got != st.want {
			t.Errorf("after signup %d (t+%v) enqueue calls = %d, want %d", i, s.Clock.Now().Sub(epoch), got, st.want)
		}
	}
	// Every signup is recorded, sent or not.
	if got := len(allEvents(t, s, preferences.LedgerQuery{Type: preferences.EventSignup})); got != len(steps) {
		t.Errorf("signup events = %d, want %d", got, len(steps))
	}
	// A re-sent round for the same pending lists keeps its nonce, so the first mail still works.
	calls := rec.Calls()
	for _, c := range calls[1:] {
		if c.Nonce != calls[0].Nonce {
			t.Errorf("re-sent nonce %q, want the round's %q", c.Nonce, calls[0].Nonce)
		}
	}
	mustConfirm(t, s, calls[0])
}

func TestSignupDuplicateListQueuedOnce(t *testing.T) {
	s := newStore(t)
	mustCreateList(t, s, "news")
	req := mustSignup(t, s, signupInput("dup@example.org", "news", "news"))
	if !slices.Equal(req.Lists, []string{"news"}) {
		t.Errorf("queued lists = %v, want [news]", req.Lists)
	}
	sub, err := s.Subscriber(context.Background(), req.Subscriber)
	if err != nil {
		t.Fatal(err)
	}
	if len(sub.Subscriptions) != 1 {
		t.Errorf("subscriptions = %+v, want one", sub.Subscriptions)
	}
}

func TestSignupEnqueueErrorRollsBack(t *testing.T) {
	s := newStore(t)
	mustCreateList(t, s, "news")
	calls := 0
	err := s.Signup(context.Background(), signupInput("fail@example.org", "news"), func(tx *bbolt.Tx, req preferences.OptinRequest) error {
		calls++
		b, err := tx.CreateBucketIfNotExists([]byte("test.outbox"))
		if err != nil {
			return err
		}
		if err := b.Put([]byte(req.Subscriber), []byte(req.Nonce)); err != nil {
			return err
		}
		return errEnqueue
	})
	if !errors.Is(err, errEnqueue) {
		t.Fatalf("Signup error = %v, want %v", err, errEnqueue)
	}
	if calls == 0 {
		t.Fatalf("enqueue never called")
	}
	assertNothingStored(t, s)
	if n := s.BucketLen(t, "test.outbox"); n != 0 {
		t.Errorf("outbox has %d entries, want 0", n)
	}
	// The failed signup does not count as a sent confirmation: a retry sends at once.
	req := mustSignup(t, s, signupInput("fail@example.org", "news"))
	if req.Subscriber == "" {
		t.Errorf("retry after a failed enqueue queued nothing, want a confirmation")
	}
}

// TestSignupConcurrentGroupCommit runs many signups at once, some of whose enqueue
// fails, so that the group committer puts several into one transaction and has to roll
// back and retry groups. Each success must be stored whole and each failure not at all.
func TestSignupConcurrentGroupCommit(t *testing.T) {
	s := newStore(t)
	mustCreateList(t, s, "news")
	const n = 200
	failing := func(i int) bool { return i%7 == 3 || i%11 == 5 }
	type outcome struct {
		id  string // subscriber of the last attempt (the committed one for successes)
		err error
	}
	out := make([]outcome, n)
	var attempts atomic.Int64 // more than n: groups were rolled back and retried
	email := func(i int) string { return fmt.Sprintf("Concurrent.%03d@Example.org", i) }
	start := make(chan struct{})
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			<-start
			out[i].err = s.Signup(context.Background(), signupInput(email(i), "news"), func(tx *bbolt.Tx, req preferences.OptinRequest) error {
				out[i].id = req.Subscriber
				attempts.Add(1)
				b, err := tx.CreateBucketIfNotExists([]byte("test.outbox"))
				if err != nil {
					return err
				}
				if err := b.Put([]byte(req.Subscriber), []byte(req.Nonce)); err != nil {
					return err
				}
				if failing(i) {
					return fmt.Errorf("signup %d: %w", i, errEnqueue)
				}
				return nil
			})
		})
	}
	close(start)
	wg.Wait()
	t.Logf("%d signups, %d enqueue attempts", n, attempts.Load())

	ok := map[string]int{} // subscriber -> goroutine
	for i, o := range out {
		switch {
		case failing(i) && !errors.Is(o.err, errEnqueue):
			t.Errorf("signup %d: error = %v, want %v", i, o.err, errEnqueue)
		case !failing(i) && o.err != nil:
			t.Errorf("signup %d: error = %v, want nil", i, o.err)
		case !failing(i):
			ok[o.id] = i
		}
	}
	if t.Failed() {
		t.FailNow()
	}
	wantOK := len(ok)
	ctx := context.Background()
	for i, o := range out {
		sub, err := s.Subscriber(ctx, o.id)
		if failing(i) {
			if !errors.Is(err, preferences.ErrNotFound) {
				t.Errorf("failed signup %d left subscriber %s (err %v), want ErrNotFound", i, o.id, err)
			}
			continue
		}
		if err != nil {
			t.Errorf("signup %d: Subscriber(%s): %v", i, o.id, err)
			continue
		}
		if sub.Email != email(i) {
			t.Errorf("subscriber %s email = %q, want %q", o.id, sub.Email, email(i))
		}
	}
	events := subscribersInLedger(t, s)
	if len(events) != wantOK {
		t.Errorf("ledger has signups of %d subscribers, want %d", len(events), wantOK)
	}
	for id, c := range events {
		if _, isOK := ok[id]; !isOK || c != 1 {
			t.Errorf("ledger has %d signup events of %s (successful: %v), want 1 of a successful signup", c, id, isOK)
		}
	}
	for _, b := range []string{"prefs.subscribers", "prefs.email_index", "prefs.data_keys", "prefs.members",
		"prefs.ledger", "prefs.ledger_by_subscriber", "test.outbox"} {
		if got := s.BucketLen(t, b); got != wantOK {
			t.Errorf("%s has %d keys, want %d", b, got, wantOK)
		}
	}
	if res := mustVerify(t, s); !res.OK || res.Events != uint64(wantOK) {
		t.Errorf("VerifyLedger = %+v, want OK with %d events", res, wantOK)
	}
}

// Many signups of one address at once make one subscriber and queue one confirmation.
func TestSignupConcurrentSameAddress(t *testing.T) {
	s := newStore(t)
	mustCreateList(t, s, "news")
	const n = 50
	var rec recorder
	start := make(chan struct{})
	var wg sync.WaitGroup
	errs := make([]error, n)
	for i := range n {
		wg.Go(func() {
			<-start
			in := signupInput("same@example.org", "news")
			in.Name = fmt.Sprintf("attempt %d", i)
			errs[i] = s.Signup(context.Background(), in, rec.Enqueue)
		})
	}
	close(start)
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Errorf("signup %d: %v", i, err)
		}
	}
	if got := s.BucketLen(t, "prefs.subscribers"); got != 1 {
		t.Errorf("subscribers = %d, want 1", got)
	}
	if got := len(rec.Calls()); got != 1 {
		t.Errorf("enqueue calls = %d, want 1", got)
	}
	if res := mustVerify(t, s); !res.OK || res.Events != n {
		t.Errorf("VerifyLedger = %+v, want OK with %d events", res, n)
	}
}

// After Close, writes must fail promptly rather than wait for a committer that is gone.
func TestWritesAfterCloseFail(t *testing.T) {
	s := newStore(t)
	mustCreateList(t, s, "news")
	if err := s.Store.Close(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.DB.Close() })
	s.Closed = true
	for i := range 20 {
		done := make(chan error, 1)
		go func() { done <- s.Signup(context.Background(), signupInput("late@example.org", "news"), noEnqueue) }()
		select {
		case err := <-done:
			if err == nil {
				t.Fatalf("Signup %d after Close: got nil error, want an error", i)
			}
		case <-time.After(2 * time.Second):
			t.Fatalf("Signup %d after Close still blocked after 2s, want an error at once", i)
		}
	}
}

func TestConfirm(t *testing.T) {
	ctx := context.Background()
	t.Run("confirms only the token's round", func(t *testing.T) {
		s := newStore(t)
		mustCreateList(t, s, "news")
		mustCreateList(t, s, "offers")
		round1 := mustSignup(t, s, signupInput("r@example.org", "news"))
		s.Clock.Advance(time.Minute) // within the resend interval: offers pending, no mail
		if req := mustSignup(t, s, signupInput("r@example.org", "offers")); req.Subscriber != "" {
			t.Fatalf("second signup within the interval queued %+v", req)
		}
		res, err := s.Confirm(ctx, preferences.ConfirmInput{Subscriber: round1.Subscriber, Lists: []string{"news", "offers"}, Nonce: round1.Nonce})
		if err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(res.Confirmed, []string{"news"}) || len(res.Already) != 0 {
			t.Errorf("Confirm = %+v, want Confirmed [news]", res)
		}
		if got := subscriptionStatus(t, s, round1.Subscriber, "offers"); got != preferences.SubPending {
			t.Errorf("offers = %q, want still %q", got, preferences.SubPending)
		}
	})
	t.Run("empty nonce never confirms", func(t *testing.T) {
		s := newStore(t)
		mustCreateList(t, s, "news")
		mustCreateList(t, s, "offers")
		round1 := mustSignup(t, s, signupInput("e@example.org", "news"))
		s.Clock.Advance(time.Minute)
		mustSignup(t, s, signupInput("e@example.org", "offers")) // pending, in no round
		_, err := s.Confirm(ctx, preferences.ConfirmInput{Subscriber: round1.Subscriber, Lists: []string{"offers"}, Nonce: ""})
		if !errors.Is(err, preferences.ErrStaleOptin) {
			t.Errorf("Confirm with an empty nonce: error = %v, want ErrStaleOptin", err)
		}
		if got := subscriptionStatus(t, s, round1.Subscriber, "offers"); got != preferences.SubPending {
			t.Errorf("offers = %q, want %q", got, preferences.SubPending)
		}
	})
	t.Run("repeat reports Already and writes no event", func(t *testing.T) {
		s := newStore(t)
		mustCreateList(t, s, "news")
		req := mustSignup(t, s, signupInput("twice@example.org", "news"))
		first := mustConfirm(t, s, req)
		if !slices.Equal(first.Confirmed, []string{"news"}) || len(first.Already) != 0 {
			t.Errorf("first Confirm = %+v, want Confirmed [news]", first)
		}
		before := mustVerify(t, s)
		s.Clock.Advance(time.Minute)
		second := mustConfirm(t, s, req)
		if len(second.Confirmed) != 0 || !slices.Equal(second.Already, []string{"news"}) {
			t.Errorf("second Confirm = %+v, want Already [news]", second)
		}
		if after := mustVerify(t, s); after != before {
			t.Errorf("ledger after repeat = %+v, want unchanged %+v", after, before)
		}
		if got := len(allEvents(t, s, preferences.LedgerQuery{Type: preferences.EventConfirmed})); got != 1 {
			t.Errorf("confirmed events = %d, want 1", got)
		}
	})
	t.Run("stale nonce", func(t *testing.T) {
		s := newStore(t)
		mustCreateList(t, s, "news")
		mustCreateList(t, s, "offers")
		old := mustSignup(t, s, signupInput("stale@example.org", "news"))
		s.Clock.Advance(preferences.OptinResendInterval)
		// A new round covering news and offers replaces the old one.
		next := mustSignup(t, s, signupInput("stale@example.org", "news", "offers"))
		if next.Nonce == "" || next.Nonce == old.Nonce {
			t.Fatalf("new round nonce = %q, want a fresh one (old %q)", next.Nonce, old.Nonce)
		}
		_, err := s.Confirm(ctx, preferences.ConfirmInput{Subscriber: old.Subscriber, Lists: old.Lists, Nonce: old.Nonce})
		if !errors.Is(err, preferences.ErrStaleOptin) {
			t.Errorf("Confirm with the replaced nonce: error = %v, want ErrStaleOptin", err)
		}
		_, err = s.Confirm(ctx, preferences.ConfirmInput{Subscriber: old.Subscriber, Lists: old.Lists, Nonce: "0123456789abcdef"})
		if !errors.Is(err, preferences.ErrStaleOptin) {
			t.Errorf("Confirm with a made-up nonce: error = %v, want ErrStaleOptin", err)
		}
		if got := len(allEvents(t, s, preferences.LedgerQuery{Type: preferences.EventConfirmed})); got != 0 {
			t.Errorf("confirmed events = %d, want 0", got)
		}
		if res := mustConfirm(t, s, next); !slices.Equal(res.Confirmed, []string{"news", "offers"}) {
			t.Errorf("Confirm with the new nonce = %+v, want Confirmed [news offers]", res)
		}
	})
	t.Run("unknown subscriber", func(t *testing.T) {
		s := newStore(t)
		_, err := s.Confirm(ctx, preferences.ConfirmInput{Subscriber: "sub_000000000000000000000000", Lists: []string{"news"}, Nonce: "x"})
		if !errors.Is(err, preferences.ErrNotFound) {
			t.Errorf("error = %v, want ErrNotFound", err)
		}
	})
}

func TestRenewOptin(t *testing.T) {
	s := newStore(t)
	ctx := context.Background()
	mustCreateList(t, s, "news")
	mustCreateList(t, s, "offers")
	first := mustSignup(t, s, signupInput("renew@example.org", "news", "offers"))
	var rec recorder
	renew := func(lists ...string) bool {
		t.Helper()
		ok, err := s.RenewOptin(ctx, first.Subscriber, lists, rec.Enqueue)
		if err != nil {
			t.Fatalf("RenewOptin: %v", err)
		}
		return ok
	}
	s.Clock.Advance(preferences.OptinResendInterval - time.Second)
	if renew("news", "offers") || len(rec.Calls()) != 0 {
		t.Errorf("RenewOptin within the interval queued %+v, want nothing", rec.Calls())
	}
	s.Clock.Advance(time.Second)
	if !renew("news", "offers") {
		t.Fatalf("RenewOptin after the interval = false, want true")
	}
	got := rec.Last(t)
	if got.Subscriber != first.Subscriber || !slices.Equal(got.Lists, []string{"news", "offers"}) || got.Nonce != first.Nonce {
		t.Errorf("renewed request = %+v, want %+v (same round)", got, first)
	}
	if renew("news", "offers") || len(rec.Calls()) != 1 {
		t.Errorf("RenewOptin right after a renewal queued again: %+v", rec.Calls())
	}
	mustConfirm(t, s, preferences.OptinRequest{Subscriber: first.Subscriber, Lists: []string{"news"}, Nonce: first.Nonce})
	s.Clock.Advance(preferences.OptinResendInterval)
	if !renew("news", "offers") {
		t.Fatalf("RenewOptin with offers pending = false, want true")
	}
	if got := rec.Last(t); !slices.Equal(got.Lists, []string{"offers"}) {
		t.Errorf("renewed lists = %v, want [offers] (news is confirmed)", got.Lists)
	}
	mustConfirm(t, s, rec.Last(t))
	s.Clock.Advance(preferences.OptinResendInterval)
	if renew("news", "offers") {
		t.Errorf("RenewOptin with nothing pending = true, want false")
	}
	if ok, err := s.RenewOptin(ctx, "sub_nobody", []string{"news"}, rec.Enqueue); ok || err != nil {
		t.Errorf("RenewOptin of an unknown subscriber = %v, %v; want false, nil", ok, err)
	}
	if n := len(rec.Calls()); n != 2 {
		t.Errorf("enqueue calls = %d, want 2", n)
	}
}

func TestPendingOptin(t *testing.T) {
	s := newStore(t)
	ctx := context.Background()
	mustCreateList(t, s, "news")
	mustCreateList(t, s, "offers")
	req := mustSignup(t, s, signupInput("pending@example.org", "news", "offers"))
	ids := func(p preferences.PendingOptin) []string {
		var out []string
		for _, l := range p.Lists {
			out = append(out, l.ID)
		}
		return out
	}
	p, err := s.PendingOptin(ctx, req)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(ids(p), []string{"news", "offers"}) || p.Subscriber == nil || p.Subscriber.Email != "pending@example.org" {
		t.Errorf("PendingOptin = lists %v subscriber %+v, want [news offers] and the opened subscriber", ids(p), p.Subscriber)
	}
	mustConfirm(t, s, preferences.OptinRequest{Subscriber: req.Subscriber, Lists: []string{"news"}, Nonce: req.Nonce})
	if p, err = s.PendingOptin(ctx, req); err != nil || !slices.Equal(ids(p), []string{"offers"}) {
		t.Errorf("PendingOptin after confirming news = %v, %v; want [offers]", ids(p), err)
	}
	mustConfirm(t, s, req)
	if p, err = s.PendingOptin(ctx, req); err != nil || len(p.Lists) != 0 || !slices.Equal(p.Confirmed, []string{"news", "offers"}) {
		t.Errorf("PendingOptin after confirming all = %+v, %v; want nothing pending and [news offers] confirmed", p, err)
	}
	stale := req
	stale.Nonce = "ffffffffffffffff"
	if p, err = s.PendingOptin(ctx, stale); err != nil || len(p.Lists) != 0 {
		t.Errorf("PendingOptin of another round = %+v, %v; want empty", p, err)
	}
	if p, err = s.PendingOptin(ctx, preferences.OptinRequest{Subscriber: "sub_nobody", Lists: []string{"news"}, Nonce: "x"}); err != nil || len(p.Lists) != 0 {
		t.Errorf("PendingOptin of an unknown subscriber = %+v, %v; want empty, nil", p, err)
	}
}
