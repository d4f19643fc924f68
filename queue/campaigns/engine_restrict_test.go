package campaigns_test

import (
	"context"
	"log/slog"
	"sync"
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

// racyBook erases one recipient right after the audience was read: the planner's
// race with an erasure, made to happen.
type racyBook struct {
	*preferences.Store
	once sync.Once
	gone chan string
}

func (b *racyBook) Audience(ctx context.Context, lists []string, cur preferences.AudienceCursor, max int, data bool) ([]preferences.Recipient, preferences.AudienceCursor, bool, error) {
	rs, next, done, err := b.Store.Audience(ctx, lists, cur, max, data)
	if err == nil && len(rs) > 0 {
		b.once.Do(func() {
			if _, err := preferences.NewEraser(b.Store, nil, nil).Erase(ctx, rs[0].ID, "dpo"); err == nil {
				b.gone <- rs[0].Email
			}
		})
	}
	return rs, next, done, err
}

// With the embedded queue, someone erased between the planner's read and its queueing
// is in no job: they get nothing, and nothing is skipped for them.
func TestCampaignErasedWhilePlanningIsInNoJob(t *testing.T) {
	e := newSendEnv(t, modeBolt, envOptions{noEngine: true})
	e.list("news")
	e.audience("news", 12)
	book := &racyBook{Store: e.prefs, gone: make(chan string, 1)}
	codec, err := campaigns.NewJobCodec([]byte(engineSecret))
	if err != nil {
		t.Fatal(err)
	}
	engine := campaigns.NewEngine(e.store, book, e.tracker, e.q, e.prefs.GroupCommit, codec, e.prefs,
		campaigns.EngineConfig{DefaultFrom: "News <news@example.org>", BatchSize: 5, Window: 40, Poll: 100 * time.Millisecond},
		time.Now, slog.New(slog.DiscardHandler), nil)
	ctx, cancel := context.WithCancel(e.ctx)
	defer cancel()
	go engine.Run(ctx)
	c, err := engine.Create(e.ctx, campaigns.Input{Name: "N", Subject: "S", Lists: []string{"news"}, HTML: "<p>x</p>"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := engine.Act(e.ctx, c.ID, campaigns.ActionStart); err != nil {
		t.Fatal(err)
	}
	gone := <-book.gone
	deadline := time.Now().Add(20 * time.Second)
	for {
		got, err := engine.Get(e.ctx, c.ID)
		if err != nil {
			t.Fatal(err)
		}
		if got.Status == campaigns.StatusFinished {
			if got.Stats.Sent != 11 || got.Stats.Skipped != 0 {
				t.Errorf("stats %+v, want 11 sent and nothing skipped (the erased person was in no job)", got.Stats)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("not finished: %+v", got)
		}
		time.Sleep(10 * time.Millisecond)
	}
	if n := e.received()[gone]; n != 0 {
		t.Errorf("the erased person received %d messages", n)
	}
}
