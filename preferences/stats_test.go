package preferences_test

import (
	"context"
	"testing"
	"time"

	"consentmail/preferences"
)

func TestRecentActivityCountsTheWindowFromTheLedger(t *testing.T) {
	s := newStore(t)
	ctx := context.Background()
	mustCreateList(t, s, "news")
	mustCreateList(t, s, "offers")
	signup := func(addr, source string, lists ...string) preferences.OptinRequest {
		in := signupInput(addr, lists...)
		in.Source = source
		return mustSignup(t, s, in)
	}
	// 40 days ago: outside the window, never counted.
	old := signup("old@example.org", "homepage", "news")
	mustConfirm(t, s, old)
	s.Clock.Advance(38 * 24 * time.Hour) // two days before "today"
	a := signup("a@example.org", "homepage", "news")
	b := signup("b@example.org", "homepage", "news", "offers")
	signup("c@example.org", "footer", "news")
	signup("d@example.org", "", "news")
	s.Clock.Advance(24 * time.Hour) // yesterday
	mustConfirm(t, s, a)
	mustConfirm(t, s, b)
	// old's second signup to offers, confirmed: credited to the new signup, not to the
	// one outside the window.
	old2 := signup("old@example.org", "popup", "offers")
	mustConfirm(t, s, old2)
	s.Clock.Advance(24 * time.Hour) // today
	if _, err := s.Unsubscribe(ctx, preferences.UnsubscribeInput{Subscriber: a.Subscriber, Lists: []string{"news"}, Method: "link"}); err != nil {
		t.Fatal(err)
	}

	act, err := s.RecentActivity(ctx, 30)
	if err != nil {
		t.Fatal(err)
	}
	if len(act.Days) != 30 || act.Partial {
		t.Fatalf("%d days, partial %v; want 30, false", len(act.Days), act.Partial)
	}
	now := s.Clock.Now().UTC()
	if last := act.Days[29].Day; !last.Equal(time.Date(now.Year(), now.Month(), now.Day(), 0, 0, 0, 0, time.UTC)) {
		t.Errorf("last day %v, want today", last)
	}
	want := map[int]preferences.DayActivity{27: {Signups: 4}, 28: {Signups: 1, Confirmed: 3}, 29: {Withdrawn: 1}}
	for i, d := range act.Days {
		w := want[i]
		if d.Signups != w.Signups || d.Confirmed != w.Confirmed || d.Withdrawn != w.Withdrawn {
			t.Errorf("day %d (%s): %+v, want %+v", i, d.Day.Format("2006-01-02"), d, w)
		}
	}
	wantFunnel := []preferences.SourceFunnel{{Source: "homepage", Signups: 2, Confirmed: 2}, {Source: "", Signups: 1},
		{Source: "footer", Signups: 1}, {Source: "popup", Signups: 1, Confirmed: 1}}
	if len(act.Funnel) != len(wantFunnel) {
		t.Fatalf("funnel %+v, want %+v", act.Funnel, wantFunnel)
	}
	for i := range wantFunnel {
		if act.Funnel[i] != wantFunnel[i] {
			t.Errorf("funnel[%d] = %+v, want %+v", i, act.Funnel[i], wantFunnel[i])
		}
	}

	totals, err := s.SubscriptionTotals(ctx)
	if err != nil {
		t.Fatal(err)
	}
	// old: news and offers confirmed; a: news unsubscribed; b: both confirmed; c, d pending.
	if totals[preferences.SubConfirmed] != 4 || totals[preferences.SubPending] != 2 || totals[preferences.SubUnsubscribed] != 1 {
		t.Errorf("totals %v, want confirmed 4, pending 2, unsubscribed 1", totals)
	}
}
