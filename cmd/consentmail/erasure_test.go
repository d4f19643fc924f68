package main

import (
	"context"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"consentmail/mailer/smtptest"
	"consentmail/queue/queuetest"
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

// An erasure whose Redis step fails (Redis refuses writes) answers 503 and is
// finished by asking again: 200, the receipt of the one erased event, the withdrawal
// in Redis; a third request is 409.
func TestErasureFinishesAfterRedisFails(t *testing.T) {
	addr := queuetest.Redis(t)
	rdb := redis.NewClient(&redis.Options{Addr: addr})
	t.Cleanup(func() { rdb.Close() })
	ctx := context.Background()
	sink := smtptest.New(t)
	env := serveEnv(t.TempDir(), sink.URL())
	env["CONSENTMAIL_REDIS_URL"] = "redis://" + addr + "/0"
	srv := startServer(t, env, "serve")
	c := newClient(t, srv.BaseURL)
	c.createList("weekly")
	c.signup("gone@example.org", "weekly")
	var found struct {
		ID string `json:"id"`
	}
	if st := c.admin("GET", "/api/v1/subscribers/lookup?email=gone@example.org", "", &found); st != http.StatusOK {
		t.Fatalf("lookup: %d", st)
	}

	// Redis refuses every write, as when it is out of memory.
	if err := rdb.ConfigSet(ctx, "maxmemory-policy", "noeviction").Err(); err != nil {
		t.Fatal(err)
	}
	if err := rdb.ConfigSet(ctx, "maxmemory", "1").Err(); err != nil {
		t.Fatal(err)
	}
	st, body := c.do("DELETE", "/api/v1/subscribers/"+found.ID, "", "", "Authorization", "Bearer "+testAdminKey)
	if st != http.StatusServiceUnavailable || !strings.Contains(body, "erasure_incomplete") {
		t.Fatalf("erase while Redis refuses writes: %d %s; want 503 erasure_incomplete", st, body)
	}
	if v := rdb.HGet(ctx, "consentmail:{cm}:ws", found.ID).Val(); v != "" {
		t.Fatalf("withdrawal in Redis while it refused writes: %q", v)
	}
	if err := rdb.ConfigSet(ctx, "maxmemory", "0").Err(); err != nil {
		t.Fatal(err)
	}
	var receipt struct {
		Subscriber string `json:"subscriber"`
		LedgerSeq  uint64 `json:"ledger_seq"`
	}
	if st := c.admin("DELETE", "/api/v1/subscribers/"+found.ID, "", &receipt); st != http.StatusOK {
		t.Fatalf("erase again once Redis is back: %d, want 200", st)
	}
	erased := c.ledger("type=erased&subscriber=" + found.ID)
	if len(erased) != 1 || receipt.LedgerSeq != erased[0].Seq || receipt.Subscriber != found.ID {
		t.Fatalf("receipt %+v; erased events %+v; want the one event's seq", receipt, erased)
	}
	if v := rdb.HGet(ctx, "consentmail:{cm}:ws", found.ID).Val(); v != "1" {
		t.Errorf("withdrawal in Redis after the retry: %q, want 1", v)
	}
	if st := c.admin("DELETE", "/api/v1/subscribers/"+found.ID, "", nil); st != http.StatusConflict {
		t.Errorf("erase a finished erasure: %d, want 409", st)
	}
}
