package preferences_test

import (
	"testing"
	"time"

	"consentmail/preferences"
)

func TestRetentionExpiresAndErases(t *testing.T) {
	s := newStore(t)
	mustCreateList(t, s, "short", func(l *preferences.List) { l.RetentionDays = 30 })
	mustCreateList(t, s, "long")
	policy := preferences.RetentionPolicy{OptinTTL: 7 * 24 * time.Hour, Grace: 24 * time.Hour}

	pending := mustSignup(t, s, signupInput("pending@example.org", "long"))
	both := mustSignup(t, s, signupInput("both@example.org", "short", "long"))
	mustConfirm(t, s, both)
	onlyShort := mustSignup(t, s, signupInput("short@example.org", "short"))
	mustConfirm(t, s, onlyShort)

	// Nothing is due yet.
	res, err := s.ApplyRetention(t.Context(), policy)
	if err != nil || res.Expired != 0 || res.Scanned != 3 {
		t.Fatalf("first pass: %+v, %v", res, err)
	}
	// Eight days and a second: the pending signup is past its TTL and grace.
	s.Clock.Advance(8*24*time.Hour + time.Second)
	if res, err = s.ApplyRetention(t.Context(), policy); err != nil || res.Expired != 1 || res.Erased != 1 {
		t.Fatalf("after 8 days: %+v, %v", res, err)
	}
	if sub, _ := s.Subscriber(t.Context(), pending.Subscriber); sub.Status != preferences.StatusErased {
		t.Errorf("the unconfirmed signup is %s, want erased", sub.Status)
	}
	// Thirty-one days: "short" has expired for both; the one with nothing else left is erased.
	s.Clock.Advance(23 * 24 * time.Hour)
	if res, err = s.ApplyRetention(t.Context(), policy); err != nil || res.Expired != 2 || res.Erased != 1 {
		t.Fatalf("after 31 days: %+v, %v", res, err)
	}
	sub, err := s.Subscriber(t.Context(), both.Subscriber)
	if err != nil {
		t.Fatal(err)
	}
	states := map[string]string{}
	for _, x := range sub.Subscriptions {
		states[x.List] = x.Status
	}
	if sub.Status != preferences.StatusActive || states["short"] != preferences.SubUnsubscribed || states["long"] != preferences.SubConfirmed {
		t.Errorf("subscriber on both lists: %s %v; want active, short unsubscribed, long confirmed", sub.Status, states)
	}
	if sub, _ := s.Subscriber(t.Context(), onlyShort.Subscriber); sub.Status != preferences.StatusErased {
		t.Errorf("subscriber on short only: %s, want erased", sub.Status)
	}
	expired := allEvents(t, s, preferences.LedgerQuery{Type: preferences.EventExpired})
	if len(expired) != 3 {
		t.Fatalf("%d expired events, want 3", len(expired))
	}
	for _, e := range expired {
		if e.Actor != "retention" {
			t.Errorf("expired event %+v: actor %q", e, e.Actor)
		}
	}
	// Running again changes nothing.
	if res, err = s.ApplyRetention(t.Context(), policy); err != nil || res.Expired != 0 {
		t.Fatalf("a repeated pass: %+v, %v", res, err)
	}
	mustVerify(t, s)
}

// An open or a click (TouchActivity) is activity: it keeps a subscription alive.
func TestRetentionCountsOpensAndClicks(t *testing.T) {
	s := newStore(t)
	mustCreateList(t, s, "short", func(l *preferences.List) { l.RetentionDays = 30 })
	req := mustSignup(t, s, signupInput("reader@example.org", "short"))
	mustConfirm(t, s, req)
	policy := preferences.RetentionPolicy{OptinTTL: 7 * 24 * time.Hour, Grace: 24 * time.Hour}

	s.Clock.Advance(20 * 24 * time.Hour)
	if err := s.TouchActivity(t.Context(), []string{req.Subscriber}); err != nil {
		t.Fatal(err)
	}
	s.Clock.Advance(20 * 24 * time.Hour) // 40 days after confirming, 20 after the click
	if res, err := s.ApplyRetention(t.Context(), policy); err != nil || res.Expired != 0 {
		t.Fatalf("20 days after a click: %+v, %v; want nothing expired", res, err)
	}
	s.Clock.Advance(11 * 24 * time.Hour)
	if res, err := s.ApplyRetention(t.Context(), policy); err != nil || res.Expired != 1 || res.Erased != 1 {
		t.Fatalf("31 days after the click: %+v, %v; want expired and erased", res, err)
	}
}

// Only consent activity counts: a signup with the address, which anyone can make,
// does not restart the clock; a change in the preference centre does.
func TestRetentionCountsOnlyConsentActivity(t *testing.T) {
	s := newStore(t)
	mustCreateList(t, s, "short", func(l *preferences.List) { l.RetentionDays = 30 })
	mustCreateList(t, s, "other")
	policy := preferences.RetentionPolicy{OptinTTL: 7 * 24 * time.Hour, Grace: 24 * time.Hour}
	idle := mustSignup(t, s, signupInput("idle@example.org", "short"))
	mustConfirm(t, s, idle)
	active := mustSignup(t, s, signupInput("active@example.org", "short"))
	mustConfirm(t, s, active)

	s.Clock.Advance(20 * 24 * time.Hour)
	// A stranger types the idle person's address into forms, for both lists.
	mustSignup(t, s, signupInput("idle@example.org", "short", "other"))
	// The active person changes something in the preference centre.
	tracking := true
	if _, err := s.ChangePreferences(t.Context(), preferences.PreferenceChange{Subscriber: active.Subscriber,
		Tracking: &tracking, Method: "preference_centre"}, noEnqueue); err != nil {
		t.Fatal(err)
	}
	s.Clock.Advance(11 * 24 * time.Hour) // 31 days after confirming, 11 after the signup and the change
	if _, err := s.ApplyRetention(t.Context(), policy); err != nil {
		t.Fatal(err)
	}
	if got := subscriptionStatus(t, s, idle.Subscriber, "short"); got != preferences.SubUnsubscribed {
		t.Errorf("idle subscriber's list after a stranger's signup: %q, want expired (unsubscribed)", got)
	}
	if got := subscriptionStatus(t, s, active.Subscriber, "short"); got != preferences.SubConfirmed {
		t.Errorf("subscriber who changed preferences: %q, want still confirmed", got)
	}
}
