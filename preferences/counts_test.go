package preferences_test

import (
	"context"
	"testing"
	"time"

	"consentmail/preferences"
)

func TestCountMembers(t *testing.T) {
	s := newStore(t)
	ctx := context.Background()
	mustCreateList(t, s, "weekly")
	mustCreateList(t, s, "offers")
	for _, addr := range []string{"a@example.org", "b@example.org", "c@example.org"} {
		mustConfirm(t, s, mustSignup(t, s, signupInput(addr, "weekly")))
	}
	mustSignup(t, s, signupInput("d@example.org", "weekly", "offers"))
	both := mustSignup(t, s, signupInput("e@example.org", "weekly", "offers"))
	mustConfirm(t, s, both)
	if _, err := s.Unsubscribe(ctx, preferences.UnsubscribeInput{Subscriber: both.Subscriber, Lists: []string{"weekly"},
		Method: "link"}); err != nil {
		t.Fatal(err)
	}
	got, err := s.CountMembers(ctx, "weekly", "offers", "nobody")
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]preferences.ListCounts{
		"weekly": {Pending: 1, Confirmed: 3, Unsubscribed: 1},
		"offers": {Pending: 1, Confirmed: 1},
		"nobody": {},
	}
	for l, w := range want {
		if got[l] != w {
			t.Errorf("%s: got %+v, want %+v", l, got[l], w)
		}
	}
	if n := got["weekly"].Total(); n != 5 {
		t.Errorf("weekly total %d, want 5", n)
	}
	// A deleted list's memberships go: its counts are zero.
	if err := s.DeleteList(ctx, "offers", "test"); err != nil {
		t.Fatal(err)
	}
	if got, _ := s.CountMembers(ctx, "offers"); got["offers"] != (preferences.ListCounts{}) {
		t.Errorf("after delete: %+v, want zero", got["offers"])
	}
}

func TestLedgerSeqBefore(t *testing.T) {
	s := newStore(t)
	ctx := context.Background()
	if seq, err := s.LedgerSeqBefore(ctx, epoch); err != nil || seq != 0 {
		t.Fatalf("empty ledger: %d, %v; want 0", seq, err)
	}
	mustCreateList(t, s, "weekly")
	var times []time.Time
	for _, addr := range []string{"a@example.org", "b@example.org", "c@example.org", "d@example.org", "e@example.org"} {
		mustSignup(t, s, signupInput(addr, "weekly"))
		times = append(times, s.Clock.Now())
		s.Clock.Advance(time.Hour)
	}
	events := allEvents(t, s, preferences.LedgerQuery{})
	for _, tc := range []struct {
		name string
		at   time.Time
	}{
		{"before everything", epoch.Add(-time.Hour)},
		{"at the first", times[0]},
		{"between", times[2].Add(time.Minute)},
		{"at the last", times[4]},
		{"after everything", times[4].Add(time.Hour)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var want uint64
			for _, e := range events {
				if e.At.Before(tc.at) {
					want = e.Seq
				}
			}
			got, err := s.LedgerSeqBefore(ctx, tc.at)
			if err != nil || got != want {
				t.Errorf("got %d, %v; want %d", got, err, want)
			}
		})
	}
}
