package campaigns_test

import (
	"testing"
	"time"

	"consentmail/preferences"
	"consentmail/queue/campaigns"
)

// A person restricted while a campaign runs gets nothing more from it, including the
// message already queued for them.
func TestCampaignSkipsSomeoneRestrictedMeanwhile(t *testing.T) {
	forEachMode(t, func(t *testing.T, mode sendMode) {
		e, c, addrs := slowCampaign(t, mode, 30, 15*time.Millisecond)
		last := addrs[len(addrs)-1]
		if err := e.prefs.Restrict(e.ctx, preferences.StatusChange{Subscriber: e.subs[last], Actor: "dpo"}); err != nil {
			t.Fatal(err)
		}
		if n := e.received()[last]; n != 0 {
			t.Fatalf("the campaign reached %s before the restriction: the relay is too fast for this test", last)
		}
		done := e.waitStatus(c.ID, campaigns.StatusFinished)
		if n := e.received()[last]; n != 0 {
			t.Errorf("%s received %d messages after being restricted", last, n)
		}
		if done.Stats.Skipped != 1 || done.Stats.Sent != 29 {
			t.Errorf("stats %+v, want 29 sent and 1 skipped", done.Stats)
		}
	})
}
