package campaigns_test

import (
	"fmt"
	"testing"
	"time"

	"go.etcd.io/bbolt"

	"consentmail/preferences"
	"consentmail/queue/campaigns"
)

// boltTracker is a BoltTracker on e's store, writing in its group commits.
func (e *env) boltTracker(t *testing.T) *campaigns.BoltTracker {
	t.Helper()
	tr, err := campaigns.NewBoltTracker(e.db, e.prefs.GroupCommit, e.prefs, nil, time.Now)
	if err != nil {
		t.Fatal(err)
	}
	return tr
}

// recordLikeACampaign records n results of campaign as a campaign does: 16 handlers
// take jobs of 100 recipients in the audience's order and record each group of 10 as
// it is sent, in the store's group commits.
func recordLikeACampaign(t *testing.T, tr *campaigns.BoltTracker, campaign string, n int, id func(int) string) {
	t.Helper()
	const perJob, group, handlers = 100, 10, 16
	next := make(chan int)
	errs := make(chan error, handlers)
	for range handlers {
		go func() {
			for j := range next {
				for g := j; g < min(j+perJob, n); g += group {
					var outcomes []campaigns.Outcome
					for i := g; i < min(g+group, n); i++ {
						outcomes = append(outcomes, campaigns.Outcome{Subscriber: id(i), Result: campaigns.ResultSent, Domain: "example.org"})
					}
					if err := tr.Record(t.Context(), campaign, outcomes); err != nil {
						errs <- err
						return
					}
				}
			}
			errs <- nil
		}()
	}
	for j := 0; j < n; j += perJob {
		next <- j
	}
	close(next)
	for range handlers {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
}

// subID is the i-th subscriber id of the store's form: "sub_", 48 bits of
// milliseconds and 48 random bits in hex.
func subID(i int) string { return fmt.Sprintf("sub_%012x%012x", 0x019a00000000+i, 0xabcdef000000+i) }

// TestCampaignResultsTakeLittleRoom: a campaign's results, recorded as a campaign
// records them, are kept in a bucket of the campaign's own under 13-byte keys and take
// under 64 bytes of the data file's pages each (about 120 with the campaign's and the
// subscriber's ids in every key); every result reads back, and a subscriber id of
// another form, or with upper-case hex, has a key of its own.
func TestCampaignResultsTakeLittleRoom(t *testing.T) {
	e := newEnv(t)
	tr := e.boltTracker(t)
	const n = 20000
	const campaign = "cmp_019a0000000000000000abcd"
	recordLikeACampaign(t, tr, campaign, n, subID)
	odd := []string{"sub_019A00000000ABCDEF000000", "legacy-42", "sub_019a00000000abcdef00000"}
	oddResult := []campaigns.Result{campaigns.ResultFailed, campaigns.ResultSkipped, campaigns.ResultFailed}
	for i, id := range odd {
		if err := tr.Record(t.Context(), campaign, []campaigns.Outcome{{Subscriber: id, Result: oddResult[i]}}); err != nil {
			t.Fatal(err)
		}
	}
	for _, i := range []int{0, 1, n / 2, n - 1} {
		if r, err := tr.Result(t.Context(), campaign, subID(i)); err != nil || r != campaigns.ResultSent {
			t.Errorf("result of %s: %v, %v; want sent", subID(i), r, err)
		}
	}
	for i, id := range odd {
		if r, err := tr.Result(t.Context(), campaign, id); err != nil || r != oddResult[i] {
			t.Errorf("result of %q: %v, %v; want its own", id, r, err)
		}
	}
	if r, err := tr.Result(t.Context(), campaign, "sub_019a00000000abcdef0000ff"); err != nil || r != campaigns.ResultNone {
		t.Errorf("result of someone not recorded: %v, %v", r, err)
	}
	if c, err := tr.Counts(t.Context(), campaign); err != nil || c.Sent != n || c.Failed != 2 || c.Skipped != 1 {
		t.Errorf("counts %+v, %v", c, err)
	}
	err := e.db.View(func(tx *bbolt.Tx) error {
		if k, _ := tx.Bucket([]byte("campaigns.results")).Cursor().First(); k != nil {
			t.Errorf("a result in the first layout: %q", k)
		}
		st := tx.Bucket([]byte("campaigns.outcomes")).Bucket([]byte(campaign)).Stats()
		per := float64(st.LeafAlloc+st.BranchAlloc) / float64(st.KeyN)
		t.Logf("%d results on %d pages: %.0f bytes each", st.KeyN, st.LeafPageN+st.BranchPageN, per)
		if st.KeyN != n+len(odd) || per > 64 {
			t.Errorf("%d results take %.0f bytes each, want %d under 64", st.KeyN, per, n+len(odd))
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// TestCampaignResultsOfAnEarlierVersion: a campaign begun by a version that kept its
// results under one key per campaign and subscriber keeps that layout: what it
// recorded is done (not sent again), what it records now goes beside it and reads
// back, and a campaign begun now has a bucket of its own.
func TestCampaignResultsOfAnEarlierVersion(t *testing.T) {
	e := newEnv(t)
	tr := e.boltTracker(t)
	const old, fresh = "cmp_019a0000000000000000aaaa", "cmp_019a0000000000000000bbbb"
	for _, c := range []string{old, fresh} {
		if err := tr.Publish(t.Context(), &campaigns.Definition{ID: c, Name: c, Status: campaigns.StatusRunning}); err != nil {
			t.Fatal(err)
		}
	}
	err := e.db.Update(func(tx *bbolt.Tx) error { // as the version before recorded them
		for i := range 3 {
			if err := tx.Bucket([]byte("campaigns.results")).Put([]byte(old+"\x00"+subID(i)), []byte{byte(campaigns.ResultSent)}); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	recorded := []preferences.Recipient{{ID: subID(0)}, {ID: subID(1)}, {ID: subID(2)}}
	verdicts, err := tr.Claim(t.Context(), old, recorded, time.Now().Add(time.Minute))
	if err != nil {
		t.Fatal(err)
	}
	for i, v := range verdicts {
		if v != campaigns.Done {
			t.Errorf("%s, recorded by the version before: verdict %v, want done", recorded[i].ID, v)
		}
	}
	for _, c := range []string{old, fresh} {
		if err := tr.Record(t.Context(), c, []campaigns.Outcome{{Subscriber: subID(7), Result: campaigns.ResultSkipped}}); err != nil {
			t.Fatal(err)
		}
		if r, err := tr.Result(t.Context(), c, subID(7)); err != nil || r != campaigns.ResultSkipped {
			t.Errorf("%s: result %v, %v; want skipped", c, r, err)
		}
	}
	if r, err := tr.Result(t.Context(), old, subID(1)); err != nil || r != campaigns.ResultSent {
		t.Errorf("result recorded by the version before: %v, %v", r, err)
	}
	err = e.db.View(func(tx *bbolt.Tx) error {
		flat := tx.Bucket([]byte("campaigns.results"))
		if flat.Get([]byte(old+"\x00"+subID(7))) == nil {
			t.Error("the earlier campaign's new result is not beside its others")
		}
		if flat.Get([]byte(fresh+"\x00"+subID(7))) != nil {
			t.Error("the new campaign's result went to the first layout")
		}
		outcomes := tx.Bucket([]byte("campaigns.outcomes"))
		if outcomes.Bucket([]byte(old)) != nil || outcomes.Bucket([]byte(fresh)) == nil {
			t.Error("want a bucket for the new campaign only")
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// TestResultReplacedWithinOneRecord: a result recorded twice for one subscriber in one
// transaction replaces the first in the counts, in either layout: the second lookup
// sees what the first put.
func TestResultReplacedWithinOneRecord(t *testing.T) {
	e := newEnv(t)
	tr := e.boltTracker(t)
	const old, fresh = "cmp_019a0000000000000000aaaa", "cmp_019a0000000000000000bbbb"
	err := e.db.Update(func(tx *bbolt.Tx) error { // old keeps the first layout
		return tx.Bucket([]byte("campaigns.results")).Put([]byte(old+"\x00"+subID(9)), []byte{byte(campaigns.ResultSent)})
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []string{old, fresh} {
		outcomes := []campaigns.Outcome{
			{Subscriber: subID(1), Result: campaigns.ResultSent},
			{Subscriber: subID(2), Result: campaigns.ResultSent},
			{Subscriber: subID(1), Result: campaigns.ResultBounced, Status: "5.1.1", Reply: "550 5.1.1 no such user"},
		}
		if err := tr.Record(t.Context(), c, outcomes); err != nil {
			t.Fatal(err)
		}
		if r, err := tr.Result(t.Context(), c, subID(1)); err != nil || r != campaigns.ResultBounced {
			t.Errorf("%s: result %v, %v; want the second, bounced", c, r, err)
		}
		if k, err := tr.Counts(t.Context(), c); err != nil || k.Sent != 1 || k.Failed != 1 || k.Bounced != 1 {
			t.Errorf("%s: counts %+v, %v; want 1 sent, 1 failed and bounced", c, k, err)
		}
	}
}
