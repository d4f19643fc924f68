package preferences_test

import (
	"errors"
	"testing"

	"consentmail/preferences"
)

func TestRectifyEmailNeedsAFreshOptin(t *testing.T) {
	s := newStore(t)
	mustCreateList(t, s, "news")
	req := mustSignup(t, s, signupInput("old@example.org", "news"))
	mustConfirm(t, s, req)
	other := mustSignup(t, s, signupInput("taken@example.org", "news"))

	name := "Ana Corrected"
	var rec recorder
	fields, err := s.Rectify(t.Context(), preferences.Rectification{Subscriber: req.Subscriber, Name: &name,
		Email: "new@example.org", EmailKey: "new@example.org", Actor: "dpo"}, rec.Enqueue)
	if err != nil {
		t.Fatal(err)
	}
	if len(fields) != 2 || fields[0] != "name" || fields[1] != "email" {
		t.Errorf("fields %v, want name and email", fields)
	}
	if _, ok := s.LookupEmail(t.Context(), "old@example.org"); ok {
		t.Error("the old address is still found")
	}
	if id, ok := s.LookupEmail(t.Context(), "new@example.org"); !ok || id != req.Subscriber {
		t.Error("the new address is not found")
	}
	sub, err := s.Subscriber(t.Context(), req.Subscriber)
	if err != nil {
		t.Fatal(err)
	}
	if sub.Email != "new@example.org" || sub.Name != name || sub.Subscriptions[0].Status != preferences.SubPending {
		t.Errorf("after rectification: %+v", sub)
	}
	ok, err := s.Consenting(t.Context(), []preferences.Recipient{{ID: req.Subscriber, Lists: []string{"news"}}})
	if err != nil || ok[0] {
		t.Errorf("campaigns may use the unconfirmed address: %v %v", ok, err)
	}
	if c := rec.Calls(); len(c) != 1 || c[0].Lists[0] != "news" {
		t.Fatalf("confirmations queued %+v, want one for news", c)
	}
	mustConfirm(t, s, rec.Last(t))
	if ok, _ := s.Consenting(t.Context(), []preferences.Recipient{{ID: req.Subscriber, Lists: []string{"news"}}}); !ok[0] {
		t.Error("still not usable after confirming the new address")
	}
	if evs := allEvents(t, s, preferences.LedgerQuery{Subscriber: req.Subscriber, Type: preferences.EventRectified}); len(evs) != 1 ||
		evs[0].Details["fields"] != "name,email" || evs[0].Actor != "dpo" {
		t.Errorf("rectified events %+v", evs)
	}

	if _, err := s.Rectify(t.Context(), preferences.Rectification{Subscriber: req.Subscriber, Email: "taken@example.org",
		EmailKey: "taken@example.org"}, nil); !errors.Is(err, preferences.ErrEmailTaken) {
		t.Errorf("taking another subscriber's address: %v", err)
	}
	if err := s.Restrict(t.Context(), preferences.StatusChange{Subscriber: other.Subscriber}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Rectify(t.Context(), preferences.Rectification{Subscriber: other.Subscriber, Name: &name}, nil); !errors.Is(err, preferences.ErrStatus) {
		t.Errorf("rectifying a restricted subscriber: %v", err)
	}
	mustVerify(t, s)
}
