package main

import (
	"net/http"
	"testing"
	"time"
)

// An erasure drops the person from campaign jobs still waiting in the queue: they
// get nothing, and the campaign counts no skip for them (the job no longer holds
// them), while everyone else is sent to.
func TestErasureDropsQueuedCampaignMail(t *testing.T) {
	const n = 300 // three jobs of 100: the third waits while two are sent
	sink := slowSink(t, 5*time.Millisecond)
	dir := t.TempDir()
	audience := seedAudience(t, dir, "weekly", "erase", n)
	srv := startServer(t, serveEnv(dir, sink.URL()+"&max_conns=1"), "serve")
	c := newClient(t, srv.BaseURL)

	id := c.startCampaign("weekly", "Spring news")
	waitUntil(t, func() bool { return c.campaign(id).Stats.Queued == n }) // every job waits in the queue
	// The audience is walked in subscriber-id order: the greatest id is in the third job.
	var gone, sub string
	for addr, id := range audience {
		if id > sub {
			gone, sub = addr, id
		}
	}
	var receipt struct {
		LedgerSeq uint64 `json:"ledger_seq"`
	}
	if st := c.admin("DELETE", "/api/v1/subscribers/"+sub, "", &receipt); st != http.StatusOK || receipt.LedgerSeq == 0 {
		t.Fatalf("erase: %d %+v", st, receipt)
	}
	final := c.waitFinished(id)
	for _, m := range sink.Messages() {
		if m.To[0] == gone {
			t.Fatalf("the erased person received campaign mail")
		}
	}
	if final.Stats.Sent != n-1 || final.Stats.Skipped != 0 || sink.Received() != n-1 {
		t.Errorf("stats %+v, sink %d; want %d sent, none skipped (the job no longer held them)", final.Stats, sink.Received(), n-1)
	}
}
