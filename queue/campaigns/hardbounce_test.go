package campaigns_test

import (
	"context"
	"fmt"
	"path/filepath"
	"reflect"
	"testing"
	"time"

	"go.etcd.io/bbolt"

	"consentmail/queue/campaigns"
)

// checkHardBounces is the contract of Tracker.HardBounces, for either tracker: a
// ResultBounced counts as failed and bounced and is queued once, however often it is
// recorded, until acknowledged.
func checkHardBounces(t *testing.T, ctx context.Context, tr campaigns.Tracker) {
	t.Helper()
	bounce := func(sub string) campaigns.Outcome {
		return campaigns.Outcome{Subscriber: sub, Result: campaigns.ResultBounced, Status: "5.1.1", Reply: "550 5.1.1 no such user " + sub,
			Domain: "example.net"}
	}
	record := func(os ...campaigns.Outcome) {
		t.Helper()
		if err := tr.Record(ctx, "c", os); err != nil {
			t.Fatalf("Record: %v", err)
		}
	}
	record(bounce("a"), campaigns.Outcome{Subscriber: "b", Result: campaigns.ResultSent, Domain: "example.org"}, bounce("c"))
	record(bounce("a")) // a redelivered job
	got, err := tr.Counts(ctx, "c")
	if err != nil {
		t.Fatal(err)
	}
	if want := (campaigns.Counts{Sent: 1, Failed: 2, Bounced: 2, Domains: map[string]campaigns.DomainSends{
		"example.org": {Sent: 1}, "example.net": {Bounced: 2}}}); !reflect.DeepEqual(got, want) {
		t.Errorf("counts: got %+v, want %+v", got, want)
	}
	if r, err := tr.Result(ctx, "c", "a"); err != nil || r != campaigns.ResultBounced {
		t.Errorf("Result(a) = %c, %v; want b", r, err)
	}
	hs, err := tr.HardBounces(ctx, 10)
	if err != nil {
		t.Fatal(err)
	}
	want := []campaigns.HardBounce{
		{Campaign: "c", Subscriber: "a", Status: "5.1.1", Reply: "550 5.1.1 no such user a"},
		{Campaign: "c", Subscriber: "c", Status: "5.1.1", Reply: "550 5.1.1 no such user c"},
	}
	if !reflect.DeepEqual(hs, want) {
		t.Fatalf("HardBounces: got %+v, want %+v", hs, want)
	}
	if hs, _ := tr.HardBounces(ctx, 1); len(hs) != 1 || hs[0].Subscriber != "a" {
		t.Errorf("HardBounces(1) = %+v, want a alone", hs)
	}
	if err := tr.AckHardBounces(ctx, 1); err != nil {
		t.Fatal(err)
	}
	if hs, _ := tr.HardBounces(ctx, 10); !reflect.DeepEqual(hs, want[1:]) {
		t.Errorf("after acknowledging one: got %+v, want %+v", hs, want[1:])
	}
	if err := tr.AckHardBounces(ctx, 5); err != nil {
		t.Fatal(err)
	}
	if hs, _ := tr.HardBounces(ctx, 10); len(hs) != 0 {
		t.Errorf("after acknowledging all: got %+v, want none", hs)
	}
	// A failure that later bounces moves from one counter to the other.
	record(campaigns.Outcome{Subscriber: "d", Result: campaigns.ResultFailed, Domain: "example.net"})
	record(bounce("d"))
	if got, _ := tr.Counts(ctx, "c"); got.Failed != 3 || got.Bounced != 3 || got.Domains["example.net"].Bounced != 3 {
		t.Errorf("after d: got %+v, want failed 3 bounced 3, 3 of them at example.net", got)
	}
	// Domains beyond MaxDomains share the counters of "other".
	var many []campaigns.Outcome
	for i := range campaigns.MaxDomains + 5 {
		many = append(many, campaigns.Outcome{Subscriber: fmt.Sprintf("m%d", i), Result: campaigns.ResultSent, Domain: fmt.Sprintf("d%d.example", i)})
	}
	record(many...)
	got, _ = tr.Counts(ctx, "c")
	if len(got.Domains) != campaigns.MaxDomains+1 || got.Domains[campaigns.OtherDomain].Sent != 7 {
		t.Errorf("after %d more domains: %d domains, other %+v; want %d and 7 sent in other", len(many), len(got.Domains),
			got.Domains[campaigns.OtherDomain], campaigns.MaxDomains+1)
	}
}

func TestBoltTrackerHardBounces(t *testing.T) {
	db, err := bbolt.Open(filepath.Join(t.TempDir(), "t.db"), 0o600, &bbolt.Options{Timeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	commit := func(_ context.Context, f func(*bbolt.Tx) error) error { return db.Update(f) }
	tr, err := campaigns.NewBoltTracker(db, commit, nil, nil, time.Now)
	if err != nil {
		t.Fatal(err)
	}
	checkHardBounces(t, context.Background(), tr)
}

func testTrackerHardBounces(t *testing.T, e *trackerEnv) {
	checkHardBounces(t, e.ctx, e.tr)
}
