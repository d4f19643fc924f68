package preferences_test

import (
	"context"
	"slices"
	"testing"

	"consentmail/preferences"
)

func TestUnsubscribe(t *testing.T) {
	s := newStore(t)
	mustCreateList(t, s, "news")
	mustCreateList(t, s, "offers")
	ctx := context.Background()
	req := mustSignup(t, s, signupInput("leaving@example.org", "news", "offers"))
	mustConfirm(t, s, req)

	changed, err := s.Unsubscribe(ctx, preferences.UnsubscribeInput{Subscriber: req.Subscriber, Lists: []string{"news"},
		Method: "one_click", IP: "203.0.113.9", UserAgent: "mail-client/1"})
	if err != nil || !slices.Equal(changed, []string{"news"}) {
		t.Fatalf("Unsubscribe(news) = %v, %v; want [news]", changed, err)
	}
	sub, err := s.Subscriber(ctx, req.Subscriber)
	if err != nil {
		t.Fatal(err)
	}
	states := map[string]string{}
	for _, x := range sub.Subscriptions {
		states[x.List] = x.Status
	}
	if states["news"] != preferences.SubUnsubscribed || states["offers"] != preferences.SubConfirmed {
		t.Fatalf("subscriptions %v, want news unsubscribed and offers confirmed", states)
	}
	events := allEvents(t, s, preferences.LedgerQuery{Type: preferences.EventUnsubscribed})
	if len(events) != 1 || events[0].Details["method"] != "one_click" || events[0].IP != "203.0.113.9" ||
		events[0].UserAgent != "mail-client/1" || !slices.Equal(events[0].Lists, []string{"news"}) {
		t.Fatalf("unsubscribed events %+v, want one with method one_click, the IP and user agent", events)
	}

	// Repeating changes nothing and records nothing.
	if changed, err := s.Unsubscribe(ctx, preferences.UnsubscribeInput{Subscriber: req.Subscriber, Lists: []string{"news"}, Method: "link"}); err != nil || len(changed) != 0 {
		t.Fatalf("repeated Unsubscribe = %v, %v; want nothing changed", changed, err)
	}
	// Lists nil means every list.
	if changed, err := s.Unsubscribe(ctx, preferences.UnsubscribeInput{Subscriber: req.Subscriber, Method: "api", Actor: "dpo"}); err != nil || !slices.Equal(changed, []string{"offers"}) {
		t.Fatalf("Unsubscribe(all) = %v, %v; want [offers]", changed, err)
	}
	if n := len(allEvents(t, s, preferences.LedgerQuery{Type: preferences.EventUnsubscribed})); n != 2 {
		t.Fatalf("%d unsubscribed events, want 2", n)
	}

	// Coming back needs a fresh double opt-in.
	s.Clock.Advance(preferences.OptinResendInterval)
	again := mustSignup(t, s, signupInput("leaving@example.org", "news"))
	if again.Subscriber != req.Subscriber || again.Nonce == req.Nonce || !slices.Equal(again.Lists, []string{"news"}) {
		t.Fatalf("signup after unsubscribing queued %+v, want a new round for news of the same subscriber", again)
	}
	if _, err := s.Confirm(ctx, preferences.ConfirmInput{Subscriber: req.Subscriber, Lists: []string{"news"}, Nonce: req.Nonce}); err == nil {
		t.Fatal("the old confirmation link re-subscribed after an unsubscribe")
	}
	mustVerify(t, s)
}
