package preferences_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"go.etcd.io/bbolt"

	"consentmail/preferences"
	"consentmail/preferences/internal/preftest"
)

// walkTotals counts the membership index itself: what the kept counts must say.
func walkTotals(t *testing.T, s *testStore) map[string]int64 {
	t.Helper()
	out := map[string]int64{preferences.SubPending: 0, preferences.SubConfirmed: 0, preferences.SubUnsubscribed: 0}
	err := s.DB.View(func(tx *bbolt.Tx) error {
		return tx.Bucket([]byte("prefs.members")).ForEach(func(_, v []byte) error { out[string(v)]++; return nil })
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func totals(t *testing.T, s *testStore) map[string]int64 {
	t.Helper()
	got, err := s.SubscriptionTotals(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return got
}

// The subscriptions by state are counted as every path changes them (signups,
// confirmations, unsubscribes, erasure, list deletion), day by day: the totals equal
// a walk of the membership index, and the history gives each day's end.
func TestSubscriptionCountsAndHistory(t *testing.T) {
	ctx := context.Background()
	s := newStore(t)
	mustCreateList(t, s, "news")
	mustCreateList(t, s, "offers")
	check := func(when string) map[string]int64 {
		t.Helper()
		got, want := totals(t, s), walkTotals(t, s)
		for k, n := range want {
			if got[k] != n {
				t.Fatalf("%s: counts %v, the membership index says %v", when, got, want)
			}
		}
		return got
	}
	var ends []map[string]int64 // each day's end, oldest first
	endDay := func() {
		ends = append(ends, check(fmt.Sprintf("day %d", len(ends))))
		s.Clock.Advance(24 * time.Hour)
	}
	// Day 0: three sign up to news and offers, two confirm.
	var ids []string
	for i := range 3 {
		req := mustSignup(t, s, signupInput(fmt.Sprintf("d0-%d@example.org", i), "news", "offers"))
		if i < 2 {
			mustConfirm(t, s, req)
		}
		ids = append(ids, req.Subscriber)
	}
	endDay()
	// Day 1: one leaves offers, another is erased, a newcomer confirms.
	if _, err := s.Unsubscribe(ctx, preferences.UnsubscribeInput{Subscriber: ids[0], Lists: []string{"offers"}, Method: "api", Actor: "t"}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Erase(ctx, ids[1], "t"); err != nil {
		t.Fatal(err)
	}
	preftest.Subscribed(t, s, "d1@example.org", "news")
	endDay()
	// Day 2: offers is deleted.
	if err := s.DeleteList(ctx, "offers", "t"); err != nil {
		t.Fatal(err)
	}
	ends = append(ends, check("day 2"))

	hist, err := s.SubscriptionHistory(ctx, 4)
	if err != nil {
		t.Fatal(err)
	}
	if len(hist) != 4 || hist[3].Day.Day() != s.Clock.Now().UTC().Day() {
		t.Fatalf("history %+v", hist)
	}
	if h := hist[0]; h.Pending != 0 || h.Confirmed != 0 || h.Unsubscribed != 0 {
		t.Errorf("the day before anything: %+v", h)
	}
	for i, want := range ends {
		h := hist[i+1]
		if h.Pending != want[preferences.SubPending] || h.Confirmed != want[preferences.SubConfirmed] ||
			h.Unsubscribed != want[preferences.SubUnsubscribed] {
			t.Errorf("end of day %d: history %+v, the day's end was %v", i, h, want)
		}
	}

	// A store from before the counts: they are built at open from the index.
	want := totals(t, s)
	s.RawUpdate(t, func(tx *bbolt.Tx) error { return tx.DeleteBucket([]byte("prefs.state_counts")) })
	if got := totals(t, s); fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("rebuilt counts %v, want %v", got, want)
	}
}
