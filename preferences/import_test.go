package preferences_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"consentmail/preferences"
)

func importRow(addr string, proof bool) preferences.ImportRow {
	r := preferences.ImportRow{Email: addr, IndexKey: addr, Name: "Imported " + addr, Locale: "fr"}
	if proof {
		r.ConsentedAt, r.ConsentSource, r.ConsentIP = epoch.Add(-48*time.Hour), "paper form, Lyon fair", "203.0.113.9"
	}
	return r
}

func TestImportProofConfirmsAndNoProofIsPending(t *testing.T) {
	s := newStore(t)
	mustCreateList(t, s, "offers", private)
	ctx := context.Background()
	var rec recorder
	res, err := s.Import(ctx, "offers", "key_admin", []preferences.ImportRow{
		importRow("proof@example.org", true), importRow("noproof@example.org", false),
	}, rec.Enqueue)
	if err != nil {
		t.Fatal(err)
	}
	if res.Imported != 1 || res.Pending != 1 {
		t.Fatalf("result %+v, want 1 imported and 1 pending", res)
	}
	if c := rec.Calls(); len(c) != 1 || c[0].Lists[0] != "offers" || c[0].Nonce == "" {
		t.Fatalf("confirmations queued %+v, want one for the row without proof", c)
	}
	events := allEvents(t, s, preferences.LedgerQuery{Type: preferences.EventImported})
	if len(events) != 2 {
		t.Fatalf("%d imported events, want 2", len(events))
	}
	var proof preferences.Event
	for _, e := range events {
		if e.Details["proof"] != "none" {
			proof = e
		}
	}
	if proof.Details["consent_source"] != "paper form, Lyon fair" || proof.Details["consented_at"] != "2026-03-12T09:26:53Z" ||
		proof.IP != "203.0.113.9" || proof.Actor != "key_admin" {
		t.Errorf("imported event with proof %+v lacks its proof", proof)
	}
	sub, err := s.Subscriber(ctx, proof.Subscriber)
	if err != nil {
		t.Fatal(err)
	}
	if sub.Subscriptions[0].Status != preferences.SubConfirmed || sub.Name != "Imported proof@example.org" || sub.Locale != "fr" {
		t.Errorf("imported subscriber %+v, want confirmed with the row's profile", sub)
	}
	// The pending one confirms through its link; the confirmed one is now an audience.
	mustConfirm(t, s, rec.Last(t))
	rs, _, done, err := s.Audience(ctx, []string{"offers"}, preferences.AudienceCursor{}, 10, true)
	if err != nil || !done || len(rs) != 2 {
		t.Fatalf("Audience: %d recipients, done %v, err %v; want both", len(rs), done, err)
	}

	// Importing again changes nothing for confirmed people and sends nothing.
	var again recorder
	res, err = s.Import(ctx, "offers", "key_admin", []preferences.ImportRow{importRow("proof@example.org", false)}, again.Enqueue)
	if err != nil || res.Imported != 1 || len(again.Calls()) != 0 {
		t.Fatalf("re-import: %+v, %v, %d confirmations; want 1 imported and none sent", res, err, len(again.Calls()))
	}
}

func TestImportRefusesUnknownListAndHugeBatch(t *testing.T) {
	s := newStore(t)
	ctx := context.Background()
	if _, err := s.Import(ctx, "nope", "", []preferences.ImportRow{importRow("a@example.org", true)}, nil); err == nil {
		t.Error("import into an unknown list succeeded")
	}
	mustCreateList(t, s, "big")
	rows := make([]preferences.ImportRow, preferences.MaxImportBatch+1)
	for i := range rows {
		rows[i] = importRow(fmt.Sprintf("p%d@example.org", i), true)
	}
	if _, err := s.Import(ctx, "big", "", rows, nil); err == nil {
		t.Error("a batch over MaxImportBatch was accepted")
	}
}

func TestAudienceStreamsInBatchesAcrossLists(t *testing.T) {
	s := newStore(t)
	ctx := context.Background()
	mustCreateList(t, s, "a")
	mustCreateList(t, s, "b")
	var rows []preferences.ImportRow
	for i := range 25 {
		rows = append(rows, importRow(fmt.Sprintf("a%02d@example.org", i), true))
	}
	if _, err := s.Import(ctx, "a", "", rows, nil); err != nil {
		t.Fatal(err)
	}
	// Ten of list a are also on b, plus five only on b.
	rows = rows[:10]
	for i := range 5 {
		rows = append(rows, importRow(fmt.Sprintf("b%02d@example.org", i), true))
	}
	if _, err := s.Import(ctx, "b", "", rows, nil); err != nil {
		t.Fatal(err)
	}
	seen := map[string]int{}
	cur := preferences.AudienceCursor{}
	for pages := 0; ; pages++ {
		rs, next, done, err := s.Audience(ctx, []string{"a", "b"}, cur, 7, true)
		if err != nil {
			t.Fatal(err)
		}
		if len(rs) > 7 {
			t.Fatalf("page of %d, want at most 7", len(rs))
		}
		for _, r := range rs {
			seen[r.Email]++
		}
		if done {
			break
		}
		if pages > 10 {
			t.Fatal("the walk does not end")
		}
		cur = next
	}
	if len(seen) != 30 {
		t.Errorf("%d people, want 30", len(seen))
	}
	for addr, n := range seen {
		if n != 1 {
			t.Errorf("%s returned %d times", addr, n)
		}
	}
	if n, err := s.CountAudience(ctx, []string{"a", "b"}); err != nil || n != 30 {
		t.Errorf("CountAudience = %d, %v; want 30", n, err)
	}
}
