package main

import (
	"fmt"
	"net/http"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-smtp"

	"consentmail/mailer/smtptest"
	"consentmail/queue/queuetest"
)

// pausedView is a campaign as GET /api/v1/campaigns/{id} shows it, with its rates.
type pausedView struct {
	Status       string `json:"status"`
	PausedReason string `json:"paused_reason"`
	Stats        struct {
		Sent, Failed, Bounced, Complained int64
		BounceRate                        float64 `json:"bounce_rate"`
		ComplaintRate                     float64 `json:"complaint_rate"`
		Domains                           map[string]struct {
			Sent, Bounced, Complained int64
			ComplaintRate             float64 `json:"complaint_rate"`
		} `json:"domains"`
	} `json:"stats"`
}

func (c *client) pausedView(id string) pausedView {
	c.tb.Helper()
	var v pausedView
	if st := c.admin("GET", "/api/v1/campaigns/"+id, "", &v); st != http.StatusOK {
		c.tb.Fatalf("get campaign %s: %d", id, st)
	}
	return v
}

// waitSinkStill waits until s has received nothing new for a while (the sends under
// way at a pause settle) and returns its count.
func waitSinkStill(tb testing.TB, s *smtptest.Sink) int {
	tb.Helper()
	deadline := time.Now().Add(20 * time.Second)
	n := s.Received()
	for still := time.Now(); time.Since(still) < time.Second; {
		if time.Now().After(deadline) {
			tb.Fatalf("the relay still receives after 20s (%d messages)", n)
		}
		time.Sleep(50 * time.Millisecond)
		if m := s.Received(); m != n {
			n, still = m, time.Now()
		}
	}
	return n
}

// TestCampaignPausesItselfOnComplaints: recipients complain about one message in
// ten (ARF reports to the inbound server, naming the message the relay received by
// its reference header), far above the 0.3 % threshold: once 20 messages are out, the
// running campaign pauses itself with the reason in its status, sending stops within
// the sends already under way, and the stats show the rates.
func TestCampaignPausesItselfOnComplaints(t *testing.T) {
	const n = 300
	sink := slowSink(t, 20*time.Millisecond)
	dir := t.TempDir()
	seedAudience(t, dir, "weekly", "fbl", n)
	env := serveEnv(dir, relayURL(sink))
	env["CONSENTMAIL_INBOUND_SMTP_ADDR"] = "127.0.0.1:0"
	env["CONSENTMAIL_BOUNCE_DOMAIN"] = bounceDomain
	env["CONSENTMAIL_PAUSE_MIN_SENT"] = "20"
	srv := startServer(t, env, "serve")
	addr := srv.Stdout.waitFor(t, regexp.MustCompile(`inbound SMTP on (\S+)`), srv.done)
	c := newClient(t, srv.BaseURL)
	id := c.startCampaign("weekly", "Spring news")

	// Complain about every tenth message the relay receives, until the campaign stops.
	complaints, seen := 0, 0
	deadline := time.Now().Add(30 * time.Second)
	var v pausedView
	for v = c.pausedView(id); v.Status == "running"; v = c.pausedView(id) {
		if time.Now().After(deadline) {
			t.Fatalf("campaign still running after 30s: %+v, %d complaints sent", v, complaints)
		}
		msgs := sink.Messages() // newest first: the seen-th received is counted from the end
		for ; seen < len(msgs); seen++ {
			if seen%10 != 0 {
				continue
			}
			ref := msgs[len(msgs)-1-seen].Header.Get("X-Consentmail-Ref")
			if err := smtptest.Deliver(addr, "fbl@"+bounceDomain, inboundFixture(t, "arf_yahoo.eml", "", ref)); err != nil {
				t.Fatalf("complaint about message %d: %v", seen, err)
			}
			complaints++
		}
		time.Sleep(5 * time.Millisecond)
	}
	if v.Status != "paused" || !strings.HasPrefix(v.PausedReason, "complaint_rate ") || !strings.Contains(v.PausedReason, "> 0.30%") {
		t.Fatalf("campaign %s with reason %q, want paused for complaint_rate … > 0.30%%", v.Status, v.PausedReason)
	}
	got := waitSinkStill(t, sink)
	if got >= n/2 {
		t.Errorf("the relay received %d of %d messages, want sending to stop soon after 20", got, n)
	}
	time.Sleep(500 * time.Millisecond) // nothing sends while paused: look again a while later
	if again := sink.Received(); again != got {
		t.Errorf("the relay received %d messages while paused", again-got)
	}
	v = c.pausedView(id)
	if v.Stats.Complained != int64(complaints) || v.Stats.Sent != int64(got) {
		t.Errorf("stats %+v, want %d complained of %d sent", v.Stats, complaints, got)
	}
	if want := float64(complaints) / float64(got); v.Stats.ComplaintRate != want {
		t.Errorf("complaint_rate %v, want %v", v.Stats.ComplaintRate, want)
	}
	if d := v.Stats.Domains["other"]; len(v.Stats.Domains) != 1 || d.Sent != int64(got) || d.Complained != int64(complaints) ||
		d.ComplaintRate != v.Stats.ComplaintRate {
		t.Errorf("domains %+v, want other alone (example.org is not a mailbox provider) with the campaign's counters", v.Stats.Domains)
	}
	t.Logf("paused after %d messages, %d complaints: %s", got, complaints, v.PausedReason)
	m := c.metrics()
	for _, want := range []string{
		`consentmail_campaign_autopauses_total{rate="complaint_rate"} 1`,
		fmt.Sprintf(`consentmail_campaign_feedback_total{domain="other",kind="complaint"} %d`, complaints),
		fmt.Sprintf(`consentmail_send_results_total{domain="other",result="sent"} %d`, got),
	} {
		if !strings.Contains(m, want) {
			t.Errorf("metrics lack %s", want)
		}
	}

	// Resuming clears the reason and starts a new window: without new complaints the
	// campaign finishes, although its rate overall stays far above the threshold.
	var resumed pausedView
	if st := c.admin("POST", "/api/v1/campaigns/"+id+"/resume", "", &resumed); st != http.StatusOK ||
		resumed.Status != "running" || resumed.PausedReason != "" {
		t.Fatalf("resume: %d %+v, want running without a reason", st, resumed)
	}
	if f := c.waitFinished(id); f.Stats.Sent != n {
		t.Errorf("after resume: %+v, want all %d sent", f.Stats, n)
	}
	if v := c.pausedView(id); v.Stats.ComplaintRate <= 0.003 {
		t.Errorf("complaint_rate %v at the end, want it still above the threshold", v.Stats.ComplaintRate)
	}
}

// bounceRelay is a slow relay that answers 550 5.1.1, quoting the address, for the
// given recipients.
func bounceRelay(tb testing.TB, dead ...string) *smtptest.Sink {
	s := smtptest.New(tb)
	set := map[string]bool{}
	for _, d := range dead {
		set[d] = true
	}
	s.FailRcpt(func(rcpt string) *smtp.SMTPError {
		if set[rcpt] {
			// As Postfix and others do: the reply quotes the address.
			return &smtp.SMTPError{Code: 550, EnhancedCode: smtp.EnhancedCode{5, 1, 1}, Message: "<" + rcpt + ">: no such user here"}
		}
		return nil
	})
	return s
}

// checkSendTimeBounce sends a campaign through a relay that rejects one address with
// 550 5.1.1: that subscriber is blocked with a bounced event from smtp, the campaign
// counts the bounce, and the next campaign skips them; the relay's reply, which quoted
// the address, is recorded without it. sameProcess: the API process sends, and its
// metrics count the hard bounce.
func checkSendTimeBounce(t *testing.T, c *client, people map[string]string, dead string, sink *smtptest.Sink, sameProcess bool) {
	t.Helper()
	id := c.startCampaign("weekly", "Spring news")
	c.waitFinished(id)
	v := c.pausedView(id)
	if v.Stats.Bounced != 1 || v.Stats.Failed != 1 || v.Stats.Sent != int64(len(people)-1) || v.Stats.BounceRate != 1/float64(len(people)) {
		t.Errorf("stats %+v, want 1 bounced and failed of %d", v.Stats, len(people))
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		st, _ := c.subscriberState(people[dead])
		if st == "blocked" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s after 550 5.1.1: %s, want blocked", dead, st)
		}
		time.Sleep(20 * time.Millisecond)
	}
	evs := c.ledger("type=bounced&subscriber=" + people[dead])
	if len(evs) != 1 || evs[0].Details["source"] != "smtp" || evs[0].Details["status"] != "5.1.1" ||
		evs[0].Details["campaign"] != id || evs[0].Details["diagnostic"] != "550 5.1.1 <<redacted>>: no such user here" {
		t.Errorf("bounced events %+v, want one from smtp, 5.1.1, the campaign and the reply without the address", evs)
	}
	before := sink.Received()
	next := c.startCampaign("weekly", "Summer news")
	if f := c.waitFinished(next); f.Stats.Queued != int64(len(people)-1) || f.Stats.Sent != int64(len(people)-1) {
		t.Errorf("next campaign %+v, want %d queued and sent", f.Stats, len(people)-1)
	}
	if got := sink.Received() - before; got != len(people)-1 {
		t.Errorf("the relay received %d messages of the next campaign, want %d", got, len(people)-1)
	}
	if sameProcess && !strings.Contains(c.metrics(), `consentmail_send_results_total{domain="other",result="hard_bounce"} 1`) {
		t.Error("metrics lack the hard bounce")
	}
}

// TestCampaignSendTimeBounceBlocks: embedded queue, one process.
func TestCampaignSendTimeBounceBlocks(t *testing.T) {
	dir := t.TempDir()
	people := seedAudience(t, dir, "weekly", "sync", 6)
	dead := "sync-0003@example.org"
	sink := bounceRelay(t, dead)
	srv := startServer(t, serveEnv(dir, sink.URL()), "serve")
	checkSendTimeBounce(t, newClient(t, srv.BaseURL), people, dead, sink, true)
}

// TestCampaignSendTimeBounceBlocksRedisWorker: the worker process, which has no store,
// meets the rejection; the API process blocks the subscriber.
func TestCampaignSendTimeBounceBlocksRedisWorker(t *testing.T) {
	redisAddr := queuetest.Redis(t)
	dir := t.TempDir()
	people := seedAudience(t, dir, "weekly", "rsync", 6)
	dead := "rsync-0002@example.org"
	sink := bounceRelay(t, dead)
	api := startChildArgs(t, redisEnv(serveEnv(dir, smtptest.New(t).URL()), redisAddr), "serve", "--role", "api")
	c := newClient(t, api.Base)
	wenv, wdir := workerEnv(t, redisAddr, api.Base, sink)
	startChildArgs(t, wenv, "worker")
	checkSendTimeBounce(t, c, people, dead, sink, false)
	wantNoDataDir(t, wdir)
}
