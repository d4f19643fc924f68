package campaigns_test

import (
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-smtp"

	"consentmail/preferences"
	"consentmail/queue/campaigns"
)

// TestCampaignHardBouncesBlockAndPause has a relay that answers 550 5.1.1 for one
// recipient in four: each of them is blocked with a bounced event (source smtp), the
// campaign pauses itself once the bounce rate passes 5 % after 12 messages and sends
// no more, and the next campaign leaves the blocked out.
func TestCampaignHardBouncesBlockAndPause(t *testing.T) {
	forEachMode(t, func(t *testing.T, mode sendMode) {
		e := newSendEnv(t, mode, envOptions{pauseMinSent: 12, concurrency: 1})
		e.list("news")
		addrs := e.audience("news", 60)
		dead := map[string]bool{}
		for i, a := range addrs {
			if i%4 == 0 {
				dead[a] = true
			}
		}
		e.sink.FailRcpt(func(rcpt string) *smtp.SMTPError {
			time.Sleep(5 * time.Millisecond)
			if dead[rcpt] {
				return &smtp.SMTPError{Code: 550, EnhancedCode: smtp.EnhancedCode{5, 1, 1}, Message: "no such user " + rcpt}
			}
			return nil
		})
		c := e.create(campaigns.Input{Lists: []string{"news"}})
		e.act(c.ID, campaigns.ActionStart)
		c = e.waitStatus(c.ID, campaigns.StatusPaused)
		if !strings.HasPrefix(c.PausedReason, "bounce_rate ") || !strings.Contains(c.PausedReason, "> 5.00%") {
			t.Errorf("paused_reason %q, want bounce_rate … > 5.00%%", c.PausedReason)
		}
		// Sending stops: what was claimed settles, then nothing more goes.
		settled := e.waitCampaign(c.ID, "settled", func(c campaigns.Campaign) bool {
			time.Sleep(300 * time.Millisecond)
			return reflect.DeepEqual(e.get(c.ID).Stats, c.Stats)
		})
		if n := settled.Stats.Sent + settled.Stats.Failed; n >= 60 || n < 12 {
			t.Errorf("sent and failed %d before the pause held, want between 12 and 59", n)
		}
		st := settled.Stats
		if st.Bounced == 0 || st.Bounced != st.Failed {
			t.Errorf("stats %+v: want bounced = failed > 0", st)
		}
		if want := float64(st.Bounced) / float64(st.Sent+st.Bounced); st.BounceRate != want || st.BounceRate <= 0.05 {
			t.Errorf("bounce_rate %v, want %v above 0.05", st.BounceRate, want)
		}
		// example.org is not a mailbox provider DomainBucket names.
		if d := st.Domains[campaigns.OtherDomain]; len(st.Domains) != 1 || d.Sent != st.Sent || d.Bounced != st.Bounced || d.BounceRate != st.BounceRate {
			t.Errorf("domains %+v, want other alone with the campaign's counters", st.Domains)
		}
		// Each bounced subscriber is blocked, with a bounced event from smtp.
		var bounced []string
		for a := range dead {
			id := e.subs[a]
			if r, _ := e.tracker.Result(e.ctx, c.ID, id); r == campaigns.ResultBounced {
				bounced = append(bounced, a)
			}
		}
		if int64(len(bounced)) != st.Bounced {
			t.Fatalf("%d subscribers recorded bounced, stats say %d", len(bounced), st.Bounced)
		}
		for _, a := range bounced {
			waitBlocked(t, e, a)
			evs, _, err := e.prefs.Ledger(e.ctx, preferences.LedgerQuery{Subscriber: e.subs[a], Type: preferences.EventBounced})
			if err != nil {
				t.Fatal(err)
			}
			if len(evs) != 1 || evs[0].Details["source"] != "smtp" || evs[0].Details["status"] != "5.1.1" || evs[0].Details["campaign"] != c.ID {
				t.Errorf("%s: bounced events %+v, want one from smtp, 5.1.1, campaign %s", a, evs, c.ID)
			}
		}
		// Resuming starts a new window: the campaign sends again.
		before := settled.Stats.Sent
		e.act(c.ID, campaigns.ActionResume)
		e.waitCampaign(c.ID, "sending again", func(c campaigns.Campaign) bool { return c.Stats.Sent > before })

		// The next campaign skips the blocked: those bounced before the pause and any
		// the resumed sending bounced before it was cancelled.
		e.act(c.ID, campaigns.ActionCancel)
		e.waitCampaign(c.ID, "settled after cancel", func(c campaigns.Campaign) bool {
			time.Sleep(300 * time.Millisecond)
			return reflect.DeepEqual(e.get(c.ID).Stats, c.Stats)
		})
		bounced = bounced[:0]
		for a := range dead {
			if r, _ := e.tracker.Result(e.ctx, c.ID, e.subs[a]); r == campaigns.ResultBounced {
				waitBlocked(t, e, a)
				bounced = append(bounced, a)
			}
		}
		got := e.received()
		next := e.create(campaigns.Input{Lists: []string{"news"}, Name: "Summer news"})
		e.sink.FailRcpt(nil)
		e.act(next.ID, campaigns.ActionStart)
		e.waitStatus(next.ID, campaigns.StatusFinished)
		after := e.received()
		for _, a := range bounced {
			if after[a] != got[a] {
				t.Errorf("%s, blocked, received the next campaign", a)
			}
		}
		if n := e.get(next.ID).Stats.Sent; n != int64(60-len(bounced)) {
			t.Errorf("next campaign sent %d, want %d", n, 60-len(bounced))
		}
	})
}

// waitBlocked waits until the subscriber of address a is blocked (a bounce blocks
// asynchronously, after the relay's answer was recorded).
func waitBlocked(t *testing.T, e *sendEnv, a string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		s, err := e.prefs.Subscriber(e.ctx, e.subs[a])
		if err != nil {
			t.Fatal(err)
		}
		if s.Status == preferences.StatusBlocked {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s is %s, want blocked", a, s.Status)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
