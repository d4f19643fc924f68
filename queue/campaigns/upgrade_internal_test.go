package campaigns

import (
	"bytes"
	"maps"
	"path/filepath"
	"testing"

	gojson "github.com/goccy/go-json"
	"go.etcd.io/bbolt"
)

// The hard bounces an earlier version queued with the relay's reply as it came are
// redacted in place, in order, and nothing else changes: a reply without an address
// keeps its bytes, and a data file without the queue is left alone.
func TestRedactQueuedHardBounces(t *testing.T) {
	db, err := bbolt.Open(filepath.Join(t.TempDir(), "c.db"), 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if err := db.Update(Upgrade); err != nil {
		t.Fatalf("a data file without the queue: %v", err)
	}
	queued := []HardBounce{
		{Campaign: "c1", Subscriber: "s1", Status: "5.1.1", Reply: "550 5.1.1 <ana@example.org>: Recipient address rejected"},
		{Campaign: "c1", Subscriber: "s2", Status: "5.1.1", Reply: "550 5.1.1 no such user here"},
		{Campaign: "c2", Subscriber: "s3", Status: "5.1.2", Reply: `550 5.1.2 "mary o'brien"@example.org unknown; also mary.o'brien@example.org`},
	}
	var before [][]byte
	err = db.Update(func(tx *bbolt.Tx) error {
		if _, err := tx.CreateBucket(bucketHard); err != nil {
			return err
		}
		for _, h := range queued {
			if err := queueHardBounce(tx, h); err != nil {
				return err
			}
		}
		return tx.Bucket(bucketHard).ForEach(func(_, v []byte) error { before = append(before, append([]byte(nil), v...)); return nil })
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := db.Update(Upgrade); err != nil {
		t.Fatal(err)
	}
	want := []string{
		"550 5.1.1 <<redacted>>: Recipient address rejected",
		"550 5.1.1 no such user here",
		"550 5.1.2 <redacted> unknown; also <redacted>",
	}
	i := 0
	err = db.View(func(tx *bbolt.Tx) error {
		return tx.Bucket(bucketHard).ForEach(func(_, v []byte) error {
			var h HardBounce
			if err := gojson.Unmarshal(v, &h); err != nil {
				return err
			}
			if i >= len(want) {
				t.Errorf("more entries than queued: %+v", h)
				return nil
			}
			q := queued[i]
			if h.Reply != want[i] || h.Campaign != q.Campaign || h.Subscriber != q.Subscriber || h.Status != q.Status {
				t.Errorf("entry %d: %+v, want %+v with the reply %q", i, h, q, want[i])
			}
			if want[i] == q.Reply && string(v) != string(before[i]) {
				t.Errorf("entry %d without an address was rewritten: %s, was %s", i, v, before[i])
			}
			i++
			return nil
		})
	})
	if err != nil || i != len(want) {
		t.Fatalf("read %d entries, %v; want %d", i, err, len(want))
	}
}

// Upgrade folds the per-domain counters earlier versions kept by name (a person's own
// domain among them) into "other", in the tracker's counts and in the campaign's
// feedback, keeps every total, names the mailbox providers as before, and leaves
// untouched a campaign with nothing to fold. The stats of a campaign not yet upgraded
// (Redis keeps its counters) show the same.
func TestUpgradeFoldsStoredDomains(t *testing.T) {
	db, err := bbolt.Open(filepath.Join(t.TempDir(), "c.db"), 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	old := boltCounts{Sent: 6, Bounced: 1, Domains: map[string]DomainSends{
		"jean-dupont.example": {Sent: 2, Bounced: 1}, "gmail.com": {Sent: 3}, OtherDomain: {Sent: 1}}}
	clean := boltCounts{Sent: 3, Domains: map[string]DomainSends{"gmail.com": {Sent: 3}}}
	rec := record{Campaign: Campaign{ID: "c1", Name: "Spring"}, Plan: plan{Bounces: 1, Complaints: 1,
		Domains: map[string]domainFeedback{"jean-dupont.example": {Bounces: 1}, "gmail.com": {Complaints: 1}}}}
	if got := domainStats(old.Domains, rec.Plan.Domains); len(got) != 2 || got[OtherDomain].Sent != 3 || got[OtherDomain].Bounced != 2 ||
		got["gmail.com"].Complained != 1 {
		t.Errorf("stats of a campaign counted before: %+v, want gmail.com and other (3 sent, 2 bounced)", got)
	}
	var cleanBefore []byte
	err = db.Update(func(tx *bbolt.Tx) error {
		counts, err := tx.CreateBucket(bucketCounts)
		if err != nil {
			return err
		}
		if _, err := tx.CreateBucket(bucketCampaigns); err != nil {
			return err
		}
		if err := storeCounts(counts, "c1", old); err != nil {
			return err
		}
		if err := storeCounts(counts, "c2", clean); err != nil {
			return err
		}
		cleanBefore = bytes.Clone(counts.Get([]byte("c2")))
		return putRecord(tx, &rec)
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := db.Update(Upgrade); err != nil {
		t.Fatal(err)
	}
	err = db.View(func(tx *bbolt.Tx) error {
		c, err := loadCounts(tx.Bucket(bucketCounts), "c1")
		if err != nil {
			return err
		}
		want := map[string]DomainSends{"gmail.com": {Sent: 3}, OtherDomain: {Sent: 3, Bounced: 1}}
		if c.Sent != 6 || c.Bounced != 1 || !maps.Equal(c.Domains, want) {
			t.Errorf("counts after the upgrade: %+v, want the totals kept and domains %v", c, want)
		}
		if got := tx.Bucket(bucketCounts).Get([]byte("c2")); !bytes.Equal(got, cleanBefore) {
			t.Errorf("counts with nothing to fold rewritten: %s, were %s", got, cleanBefore)
		}
		r, err := getRecord(tx, "c1")
		if err != nil {
			return err
		}
		wantFB := map[string]domainFeedback{"gmail.com": {Complaints: 1}, OtherDomain: {Bounces: 1}}
		if r.Name != "Spring" || r.Plan.Bounces != 1 || !maps.Equal(r.Plan.Domains, wantFB) {
			t.Errorf("campaign after the upgrade: %+v, want its feedback by domain %v", r, wantFB)
		}
		for _, b := range [][]byte{bucketCounts, bucketCampaigns} {
			_ = tx.Bucket(b).ForEach(func(k, v []byte) error {
				if bytes.Contains(v, []byte("jean-dupont")) {
					t.Errorf("%s %s still names the domain: %s", b, k, v)
				}
				return nil
			})
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}
