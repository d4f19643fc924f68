package preferences_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"go.etcd.io/bbolt"

	"consentmail/preferences"
)

func subStatus(tb testing.TB, s *testStore, id string) (string, map[string]string) {
	tb.Helper()
	sub, err := s.Subscriber(context.Background(), id)
	if err != nil {
		tb.Fatal(err)
	}
	subs := map[string]string{}
	for _, x := range sub.Subscriptions {
		subs[x.List] = x.Status
	}
	return sub.Status, subs
}

func TestHardBounceBlocksWithSealedDetails(t *testing.T) {
	s := newStore(t)
	mustCreateList(t, s, "news")
	ctx := context.Background()
	req := mustSignup(t, s, signupInput("gone@example.org", "news"))
	mustConfirm(t, s, req)
	res, err := s.RecordBounce(ctx, preferences.BounceInput{Subscriber: req.Subscriber, Campaign: "cmp_1", Permanent: true,
		Status: "5.1.1", Action: "failed", Source: "dsn",
		Personal: map[string]string{"recipient": "gone@example.org", "diagnostic": "550 5.1.1 user unknown"}})
	if err != nil || !res.Blocked {
		t.Fatalf("RecordBounce = %+v, %v; want blocked", res, err)
	}
	if st, _ := subStatus(t, s, req.Subscriber); st != preferences.StatusBlocked {
		t.Fatalf("status %s, want blocked", st)
	}
	evs := allEvents(t, s, preferences.LedgerQuery{Type: preferences.EventBounced})
	if len(evs) != 1 || evs[0].Details["status"] != "5.1.1" || evs[0].Details["blocked"] != "true" ||
		evs[0].Details["diagnostic"] != "550 5.1.1 user unknown" || evs[0].Details["campaign"] != "cmp_1" {
		t.Fatalf("bounced events %+v, want one with status, campaign and the opened diagnostic", evs)
	}
	if n := s.BucketLen(t, "prefs.ledger"); n == 0 {
		t.Fatal("empty ledger")
	}
	// In the export, and unreadable after an erasure.
	x, err := s.ExportSubscriber(ctx, req.Subscriber, "test", nil)
	if err != nil || len(x.Bounces) != 1 || x.Bounces[0].Details["recipient"] != "gone@example.org" {
		t.Fatalf("export bounces %+v, %v; want the bounce with its recipient", x, err)
	}
	if _, err := s.Erase(ctx, req.Subscriber, "dpo"); err != nil {
		t.Fatal(err)
	}
	evs = allEvents(t, s, preferences.LedgerQuery{Type: preferences.EventBounced})
	if len(evs) != 1 || evs[0].Details["recipient"] != "" || !evs[0].Erased {
		t.Fatalf("after erasure %+v, want the bounce without its personal details", evs)
	}
	if _, err := s.RecordBounce(ctx, preferences.BounceInput{Subscriber: req.Subscriber, Permanent: true}); !errors.Is(err, preferences.ErrNotFound) {
		t.Fatalf("bounce after erasure: %v, want ErrNotFound", err)
	}
	mustVerify(t, s)
}

func TestSoftBouncesBlockAtTheThirdWithinThirtyDays(t *testing.T) {
	s := newStore(t)
	mustCreateList(t, s, "news")
	ctx := context.Background()
	req := mustSignup(t, s, signupInput("full@example.org", "news"))
	mustConfirm(t, s, req)
	soft := func() preferences.BounceResult {
		t.Helper()
		res, err := s.RecordBounce(ctx, preferences.BounceInput{Subscriber: req.Subscriber, Status: "4.2.2", Action: "delayed", Source: "dsn"})
		if err != nil {
			t.Fatal(err)
		}
		return res
	}
	soft()
	s.Clock.Advance(20 * 24 * time.Hour)
	soft()
	s.Clock.Advance(11 * 24 * time.Hour) // the first is now 31 days old: it stops counting
	if res := soft(); res.Blocked || res.Soft != 2 {
		t.Fatalf("third soft bounce over 31 days: %+v, want 2 counted, not blocked", res)
	}
	if st, _ := subStatus(t, s, req.Subscriber); st != preferences.StatusActive {
		t.Fatalf("status %s, want active", st)
	}
	s.Clock.Advance(24 * time.Hour)
	if res := soft(); !res.Blocked || res.Soft != 3 {
		t.Fatalf("third soft bounce within 30 days: %+v, want blocked", res)
	}
	if st, _ := subStatus(t, s, req.Subscriber); st != preferences.StatusBlocked {
		t.Fatalf("status %s, want blocked", st)
	}
	if evs := allEvents(t, s, preferences.LedgerQuery{Type: preferences.EventBounced}); len(evs) != 4 || evs[3].Details["blocked"] != "true" {
		t.Fatalf("bounced events %+v, want 4, the last blocking", evs)
	}
	mustVerify(t, s)
}

func TestComplaintWithdrawsEveryList(t *testing.T) {
	s := newStore(t)
	mustCreateList(t, s, "news")
	mustCreateList(t, s, "offers")
	ctx := context.Background()
	req := mustSignup(t, s, signupInput("angry@example.org", "news", "offers"))
	mustConfirm(t, s, req)
	changed, err := s.RecordComplaint(ctx, preferences.ComplaintInput{Subscriber: req.Subscriber, Campaign: "cmp_1",
		FeedbackType: "abuse", UserAgent: "Yahoo!-Mail-Feedback/2.0", Personal: map[string]string{"source_ip": "203.0.113.5"}})
	if err != nil || len(changed) != 2 {
		t.Fatalf("RecordComplaint = %v, %v; want both lists", changed, err)
	}
	_, subs := subStatus(t, s, req.Subscriber)
	if subs["news"] != preferences.SubUnsubscribed || subs["offers"] != preferences.SubUnsubscribed {
		t.Fatalf("subscriptions %v, want all unsubscribed", subs)
	}
	evs := allEvents(t, s, preferences.LedgerQuery{Type: preferences.EventComplained})
	if len(evs) != 1 || evs[0].Details["method"] != "complaint" || evs[0].Details["source_ip"] != "203.0.113.5" || len(evs[0].Lists) != 2 {
		t.Fatalf("complained events %+v", evs)
	}
	// A second report is recorded; it changes nothing.
	if changed, err := s.RecordComplaint(ctx, preferences.ComplaintInput{Subscriber: req.Subscriber, FeedbackType: "abuse"}); err != nil || len(changed) != 0 {
		t.Fatalf("second complaint = %v, %v", changed, err)
	}
	mustVerify(t, s)
}

func TestQuarantineIsSealedAndExpires(t *testing.T) {
	s := newStore(t)
	ctx := context.Background()
	raw := "From: someone@example.net\r\nSubject: out of office\r\n\r\nI am away, secret-probe-text."
	id, err := s.Quarantine(ctx, preferences.QuarantineInput{From: "someone@example.net", To: []string{"fbl@b.example.org"},
		Reason: "not a report", Raw: []byte(raw)})
	if err != nil {
		t.Fatal(err)
	}
	msgs, err := s.QuarantinedMessages(ctx)
	if err != nil || len(msgs) != 1 || msgs[0].ID != id || msgs[0].Message != raw || msgs[0].Reason != "not a report" {
		t.Fatalf("QuarantinedMessages = %+v, %v", msgs, err)
	}
	s.RawUpdate(t, func(tx *bbolt.Tx) error {
		return tx.Bucket([]byte("prefs.quarantine")).ForEach(func(_, v []byte) error {
			if strings.Contains(string(v), "secret-probe-text") {
				t.Error("quarantined message stored in clear")
			}
			return nil
		})
	})
	s.Clock.Advance(preferences.QuarantineTTL - time.Minute)
	if n, err := s.ExpireQuarantine(ctx); err != nil || n != 0 {
		t.Fatalf("ExpireQuarantine before 30 days = %d, %v", n, err)
	}
	s.Clock.Advance(2 * time.Minute)
	if n, err := s.ExpireQuarantine(ctx); err != nil || n != 1 {
		t.Fatalf("ExpireQuarantine after 30 days = %d, %v; want 1", n, err)
	}
	if msgs, _ := s.QuarantinedMessages(ctx); len(msgs) != 0 {
		t.Fatalf("%d kept after expiry", len(msgs))
	}
}
