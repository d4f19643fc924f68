package campaigns_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"consentmail/preferences"
	"consentmail/queue/campaigns"
)

// claimSpy records the recipients of every claim as the worker hands them in (the
// job as it was queued) and as the claim leaves them.
type claimSpy struct {
	campaigns.Tracker
	gate          chan struct{} // closed: claims go on
	records       chan struct{} // closed (or nil): results are written
	mu            sync.Mutex
	before, after []preferences.Recipient
}

func (s *claimSpy) Record(ctx context.Context, campaign string, outcomes []campaigns.Outcome) error {
	if s.records != nil {
		<-s.records
	}
	return s.Tracker.Record(ctx, campaign, outcomes)
}

// queuedWithData returns the recipients handed to a claim with personal data.
func (s *claimSpy) queuedWithData() []preferences.Recipient {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []preferences.Recipient
	for _, r := range s.before {
		if r.Email != "" || r.Name != "" || r.Attributes != nil || r.Locale != "" || len(r.Lists) == 0 {
			out = append(out, r)
		}
	}
	return out
}

func (s *claimSpy) Claim(ctx context.Context, campaign string, rs []preferences.Recipient, until time.Time) ([]campaigns.Verdict, error) {
	<-s.gate
	s.mu.Lock()
	s.before = append(s.before, rs...)
	s.mu.Unlock()
	v, err := s.Tracker.Claim(ctx, campaign, rs, until)
	s.mu.Lock()
	for i, r := range rs {
		if err == nil && v[i] == campaigns.Send {
			s.after = append(s.after, r)
		}
	}
	s.mu.Unlock()
	return v, err
}

// With the embedded queue, a campaign job holds each recipient's id and lists only:
// no address, name or attributes is ever in the queue (nor in the copies freed pages
// keep after an erasure). The claim fills them in from the book, so every message
// still goes to its address with its name rendered, and a name rectified after the job
// was queued is the one rendered.
func TestEmbeddedJobsHoldNoPersonalData(t *testing.T) {
	spy := &claimSpy{gate: make(chan struct{})}
	e := newSendEnv(t, modeBolt, envOptions{workerTracker: func(tr campaigns.Tracker) campaigns.Tracker { spy.Tracker = tr; return spy }})
	e.list("news")
	addrs := e.audience("news", 6)
	c := e.create(campaigns.Input{Lists: []string{"news"}})
	e.act(c.ID, campaigns.ActionStart)
	e.waitCampaign(c.ID, "planned", func(c campaigns.Campaign) bool { return c.Stats.Queued == 6 })
	renamed := e.subs[addrs[5]]
	name := "Renamed"
	if _, err := e.prefs.Rectify(e.ctx, preferences.Rectification{Subscriber: renamed, Name: &name, Actor: "dpo"}, nil); err != nil {
		t.Fatalf("rectify: %v", err)
	}
	close(spy.gate) // claims wait until the rectification
	e.waitStatus(c.ID, campaigns.StatusFinished)

	for _, r := range spy.queuedWithData() {
		t.Errorf("a queued job held %+v, want an id and lists only", r)
	}
	spy.mu.Lock()
	defer spy.mu.Unlock()
	if len(spy.after) != 6 {
		t.Errorf("%d recipients claimed to send, want 6", len(spy.after))
	}
	for _, r := range spy.after {
		if want := "N " + r.Email; r.ID == renamed && r.Name != name || r.ID != renamed && r.Name != want {
			t.Errorf("claimed %s (%s) with name %q", r.Email, r.ID, r.Name)
		}
	}
	msgs := e.sink.WaitFor(t, 6, 10*time.Second)
	to := map[string]string{}
	for _, m := range msgs {
		to[m.To[0]] = m.Subject
	}
	for _, a := range addrs {
		if _, ok := to[a]; !ok {
			t.Errorf("nothing reached %s: %v", a, to)
		}
	}
	if s := to[addrs[0]]; s != "Hello N "+addrs[0] {
		t.Errorf("subject %q, want the name rendered", s)
	}
	if s := to[addrs[5]]; s != "Hello "+name {
		t.Errorf("subject %q to the renamed person, want the name of when it was sent", s)
	}
}

// A group whose claim grew too old while it waited for a send slot goes back to be
// claimed again as it was queued: the personal data its first claim filled in does not
// travel with it.
func TestLateClaimsGoBackWithoutPersonalData(t *testing.T) {
	spy := &claimSpy{gate: make(chan struct{}), records: make(chan struct{})}
	close(spy.gate)
	e, c := startTwoSlots(t, 80, func(tr campaigns.Tracker) campaigns.Tracker { spy.Tracker = tr; return spy })
	// Results stall: the groups claimed meanwhile (one per job) wait for a slot until
	// their claim is older than the send deadline.
	e.waitCampaign(c.ID, "claiming a group of every job", func(campaigns.Campaign) bool {
		spy.mu.Lock()
		defer spy.mu.Unlock()
		return len(spy.before) >= 40
	})
	time.Sleep(campaigns.WithdrawalWait) // past sendBy: what those claims held is stale
	close(spy.records)
	e.waitStatus(c.ID, campaigns.StatusFinished)
	spy.mu.Lock()
	claims := len(spy.before)
	spy.mu.Unlock()
	if claims <= 80 {
		t.Fatalf("%d recipients claimed, want some claimed again after their claim grew late", claims)
	}
	for _, r := range spy.queuedWithData() {
		t.Errorf("claimed again with %+v, want an id and lists only", r)
	}
	if n := e.sink.Received(); n != 80 {
		t.Errorf("%d messages, want 80", n)
	}
}
