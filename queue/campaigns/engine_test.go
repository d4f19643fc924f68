package campaigns_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emersion/go-smtp"
	"github.com/redis/go-redis/v9"
	"go.etcd.io/bbolt"

	"consentmail/mailer"
	"consentmail/mailer/smtptest"
	"consentmail/preferences"
	"consentmail/preferences/linktoken"
	"consentmail/queue"
	"consentmail/queue/campaigns"
	"consentmail/queue/queuetest"
)

const engineSecret = "engine-test-secret-0123456789abcdef0123"

// sendEnv is the whole sending path over real parts: a bbolt consent book, the
// campaign engine, a queue (embedded or Redis), its tracker, workers, and a go-smtp
// sink as relay.
type sendEnv struct {
	t       testing.TB
	ctx     context.Context
	db      *bbolt.DB
	prefs   *preferences.Store
	store   *campaigns.Store
	engine  *campaigns.Engine
	tracker campaigns.Tracker
	q       queue.Queue
	sink    *smtptest.Sink
	signer  *linktoken.Signer
	track   *linktoken.Signer // tracking links
	subs    map[string]string // email -> subscriber id
}

type sendMode string

const (
	modeBolt  sendMode = "bolt"
	modeRedis sendMode = "redis"
)

// forEachMode runs fn once with the embedded queue and once with Redis.
func forEachMode(t *testing.T, fn func(t *testing.T, mode sendMode)) {
	for _, m := range []sendMode{modeBolt, modeRedis} {
		t.Run(string(m), func(t *testing.T) {
			t.Parallel()
			fn(t, m)
		})
	}
}

type envOptions struct {
	workers      int           // consumers (each its own Worker), default 1
	concurrency  int           // per consumer, default 4
	batch        int           // recipients per job, default 5
	window       int           // recipients queued and unsettled, default 40
	visibility   time.Duration // of the workers' claims, default 10 s
	noEngine     bool          // the test runs an engine of its own
	pauseMinSent int64         // messages before the auto-pause rates apply, default 500
	maxGroups    int           // WorkerConfig.MaxGroups, default 0 (no bound)
	// workerTracker wraps the tracker the workers use (the engine keeps the real one).
	workerTracker func(campaigns.Tracker) campaigns.Tracker
	// engineTracker wraps the tracker the engine uses (the workers keep the real one).
	engineTracker func(campaigns.Tracker) campaigns.Tracker
	// book wraps the consent book the engine reads.
	book func(campaigns.Book) campaigns.Book
}

func newSendEnv(t testing.TB, mode sendMode, opts envOptions) *sendEnv {
	t.Helper()
	if opts.workers == 0 {
		opts.workers = 1
	}
	if opts.concurrency == 0 {
		opts.concurrency = 4
	}
	if opts.batch == 0 {
		opts.batch = 5
	}
	if opts.window == 0 {
		opts.window = 40
	}
	if opts.visibility == 0 {
		opts.visibility = 10 * time.Second
	}
	log := slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelWarn}))
	db, err := bbolt.Open(filepath.Join(t.TempDir(), "consentmail.db"), 0o600, &bbolt.Options{Timeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	// With Redis, the tracker mirrors withdrawals: the store is made with it.
	var client *redis.Client
	var rt *campaigns.RedisTracker
	var opts2 []preferences.Option
	if mode == modeRedis {
		client = redis.NewClient(&redis.Options{Addr: queuetest.Redis(t)})
		t.Cleanup(func() { client.Close() })
		rt = campaigns.NewRedisTracker(client, campaigns.RedisTrackerOptions{Prefix: "cm:"})
		opts2 = append(opts2, preferences.WithMirror(rt))
	}
	prefs, err := preferences.New(db, []byte(engineSecret), time.Now, opts2...)
	if err != nil {
		t.Fatal(err)
	}
	store, err := campaigns.NewStore(db, time.Now)
	if err != nil {
		t.Fatal(err)
	}
	e := &sendEnv{t: t, ctx: context.Background(), db: db, prefs: prefs, store: store, sink: smtptest.New(t),
		signer: linktoken.NewSigner(preferences.DeriveKey([]byte(engineSecret), "unsubscribe-links")),
		track:  linktoken.NewSigner(preferences.DeriveKey([]byte(engineSecret), "tracking-links")), subs: map[string]string{}}
	backoff := func(base, max *time.Duration) { *base, *max = 50*time.Millisecond, 200*time.Millisecond }
	switch mode {
	case modeBolt:
		o := queue.BoltOptions{Commit: prefs.GroupCommit, Visibility: 10 * time.Second, PollInterval: 50 * time.Millisecond}
		backoff(&o.BackoffBase, &o.BackoffMax)
		bq, err := queue.NewBolt(db, o)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { bq.Close() })
		e.q = bq
		if e.tracker, err = campaigns.NewBoltTracker(db, prefs.GroupCommit, prefs, nil, time.Now); err != nil {
			t.Fatal(err)
		}
	case modeRedis:
		o := queue.RedisOptions{Prefix: "cm:", Visibility: 10 * time.Second, PollInterval: 50 * time.Millisecond}
		backoff(&o.BackoffBase, &o.BackoffMax)
		rq, err := queue.NewRedis(client, o)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { rq.Close() })
		e.q = rq
		e.tracker = rt
	}
	codec, err := campaigns.NewJobCodec([]byte(engineSecret))
	if err != nil {
		t.Fatal(err)
	}
	engineTracker := e.tracker
	if opts.engineTracker != nil {
		engineTracker = opts.engineTracker(e.tracker)
	}
	var book campaigns.Book = prefs
	if opts.book != nil {
		book = opts.book(prefs)
	}
	e.engine = campaigns.NewEngine(store, book, engineTracker, e.q, prefs.GroupCommit, codec, prefs,
		campaigns.EngineConfig{DefaultFrom: "News <news@example.org>", BatchSize: opts.batch, Window: opts.window,
			Poll: 100 * time.Millisecond, PauseMinSent: opts.pauseMinSent, IDsOnly: mode == modeBolt},
		time.Now, log, nil)

	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	var senders []*mailer.Sender
	for range opts.workers {
		sender, err := mailer.NewSender([]mailer.Relay{e.sink.Relay(opts.concurrency)}, mailer.Options{})
		if err != nil {
			t.Fatal(err)
		}
		senders = append(senders, sender)
		tracker := e.tracker
		if opts.workerTracker != nil {
			tracker = opts.workerTracker(tracker)
		}
		w := campaigns.NewWorker(tracker, e.q, sender, codec, e.signer, e.track, campaigns.WorkerConfig{BaseURL: "https://mail.example.org",
			Domain: "example.org", PostalAddress: "1 rue de la Paix, Paris", Visibility: opts.visibility, MaxAttempts: 4,
			PauseRecheck: 100 * time.Millisecond, MaxGroups: opts.maxGroups}, time.Now, log)
		c := queue.NewConsumer(e.q, map[string]queue.Handler{campaigns.KindCampaign: w.Handle}, opts.concurrency, log)
		wg.Add(1)
		go func() { defer wg.Done(); c.Run(ctx) }()
	}
	if !opts.noEngine {
		wg.Add(1)
		go func() { defer wg.Done(); e.engine.Run(ctx) }()
	}
	t.Cleanup(func() {
		cancel()
		wg.Wait()
		for _, s := range senders {
			s.Close()
		}
		prefs.Close()
		db.Close()
	})
	return e
}

// list creates a list.
func (e *sendEnv) list(id string) {
	e.t.Helper()
	_, err := e.prefs.CreateList(e.ctx, preferences.List{ID: id, Name: "List " + strings.ToUpper(id), Purpose: "tests",
		ConsentText: "Send me " + id, Public: true})
	if err != nil {
		e.t.Fatal(err)
	}
}

// subscribe signs email up to lists and, when confirm, confirms; it returns the
// subscriber id.
func (e *sendEnv) subscribe(email string, confirm bool, lists ...string) string {
	e.t.Helper()
	var req preferences.OptinRequest
	err := e.prefs.Signup(e.ctx, preferences.SignupInput{Email: email, IndexKey: email, Name: "N " + email, Locale: "en",
		Lists: lists, Source: "test", IP: "192.0.2.1", UserAgent: "test"},
		func(_ *bbolt.Tx, r preferences.OptinRequest) error { req = r; return nil })
	if err != nil {
		e.t.Fatalf("Signup %s: %v", email, err)
	}
	if req.Subscriber == "" {
		e.t.Fatalf("Signup %s queued no confirmation", email)
	}
	if confirm {
		if _, err := e.prefs.Confirm(e.ctx, preferences.ConfirmInput{Subscriber: req.Subscriber, Lists: req.Lists,
			Nonce: req.Nonce}); err != nil {
			e.t.Fatalf("Confirm %s: %v", email, err)
		}
	}
	e.subs[email] = req.Subscriber
	return req.Subscriber
}

// audience subscribes n confirmed people to list, named list-000@example.org on.
func (e *sendEnv) audience(list string, n int) []string {
	var out []string
	for i := range n {
		addr := fmt.Sprintf("%s-%03d@example.org", list, i)
		e.subscribe(addr, true, list)
		out = append(out, addr)
	}
	return out
}

func (e *sendEnv) create(in campaigns.Input) campaigns.Campaign {
	e.t.Helper()
	if in.Name == "" {
		in.Name = "Spring news"
	}
	if in.Subject == "" {
		in.Subject = "Hello {{.Subscriber.Name}}"
	}
	if in.HTML == "" && in.Template == "" {
		in.HTML = "<p>Hi {{.Subscriber.Name}}, spring is here.</p>"
	}
	c, err := e.engine.Create(e.ctx, in)
	if err != nil {
		e.t.Fatalf("Create: %v", err)
	}
	return c
}

func (e *sendEnv) act(id, action string) campaigns.Campaign {
	e.t.Helper()
	c, err := e.engine.Act(e.ctx, id, action)
	if err != nil {
		e.t.Fatalf("%s: %v", action, err)
	}
	return c
}

func (e *sendEnv) get(id string) campaigns.Campaign {
	e.t.Helper()
	c, err := e.engine.Get(e.ctx, id)
	if err != nil {
		e.t.Fatalf("Get: %v", err)
	}
	return c
}

// waitCampaign waits until cond holds for the campaign (polling its live view).
func (e *sendEnv) waitCampaign(id, what string, cond func(campaigns.Campaign) bool) campaigns.Campaign {
	e.t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		c := e.get(id)
		if cond(c) {
			return c
		}
		if time.Now().After(deadline) {
			qs, _ := e.q.Stats(e.ctx)
			counts, _ := e.tracker.Counts(e.ctx, id)
			e.t.Fatalf("campaign never %s: status %s, stats %+v; queue %+v; tracker %+v; sink %d", what, c.Status, c.Stats,
				qs, counts, e.sink.Received())
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func (e *sendEnv) waitStatus(id, status string) campaigns.Campaign {
	e.t.Helper()
	return e.waitCampaign(id, status, func(c campaigns.Campaign) bool { return c.Status == status })
}

// wantEachOnce checks that the sink received exactly one message for each of addrs.
func (e *sendEnv) wantEachOnce(addrs []string) {
	e.t.Helper()
	got := e.received()
	for _, a := range addrs {
		if got[a] != 1 {
			e.t.Errorf("%s received %d messages, want 1", a, got[a])
		}
	}
}

// received counts the sink's messages by envelope recipient.
func (e *sendEnv) received() map[string]int {
	n := map[string]int{}
	for _, m := range e.sink.Messages() {
		for _, to := range m.To {
			n[to]++
		}
	}
	return n
}

// slowRelay makes the sink take d per recipient.
func (e *sendEnv) slowRelay(d time.Duration) {
	e.sink.FailRcpt(func(string) *smtp.SMTPError { time.Sleep(d); return nil })
}

func TestCampaignAudienceRules(t *testing.T) {
	forEachMode(t, func(t *testing.T, mode sendMode) {
		e := newSendEnv(t, mode, envOptions{})
		e.list("a")
		e.list("b")
		e.list("c")
		e.subscribe("only-a@example.org", true, "a")
		e.subscribe("both@example.org", true, "a", "b")
		e.subscribe("only-b@example.org", true, "b")
		e.subscribe("pending@example.org", false, "a")
		e.subscribe("other-list@example.org", true, "c")
		unsub := e.subscribe("unsub@example.org", true, "a")
		restricted := e.subscribe("restricted@example.org", true, "a")
		blocked := e.subscribe("blocked@example.org", true, "b")
		if _, err := e.prefs.Unsubscribe(e.ctx, preferences.UnsubscribeInput{Subscriber: unsub, Method: "api"}); err != nil {
			t.Fatal(err)
		}
		if err := e.prefs.Restrict(e.ctx, preferences.StatusChange{Subscriber: restricted, Actor: "test"}); err != nil {
			t.Fatal(err)
		}
		if err := e.prefs.Block(e.ctx, preferences.StatusChange{Subscriber: blocked, Actor: "test"}); err != nil {
			t.Fatal(err)
		}

		c := e.create(campaigns.Input{Lists: []string{"a", "b"}})
		if c.Status != campaigns.StatusDraft {
			t.Fatalf("new campaign status %q, want draft", c.Status)
		}
		e.act(c.ID, campaigns.ActionStart)
		done := e.waitStatus(c.ID, campaigns.StatusFinished)

		want := map[string]int{"only-a@example.org": 1, "both@example.org": 1, "only-b@example.org": 1}
		got := e.received()
		for addr, n := range want {
			if got[addr] != n {
				t.Errorf("%s received %d messages, want %d", addr, got[addr], n)
			}
		}
		for addr, n := range got {
			if want[addr] == 0 {
				t.Errorf("%s received %d messages, want none", addr, n)
			}
		}
		if s := done.Stats; s.Sent != 3 || s.Queued != 3 || s.Failed != 0 || s.Audience != 5 {
			t.Errorf("stats %+v, want sent 3, queued 3, failed 0, audience 5 (confirmed, restricted and blocked included)", s)
		}
	})
}

func TestCampaignHeaders(t *testing.T) {
	forEachMode(t, func(t *testing.T, mode sendMode) {
		e := newSendEnv(t, mode, envOptions{})
		e.list("news")
		addrs := e.audience("news", 3)
		c := e.create(campaigns.Input{Lists: []string{"news"}})
		e.act(c.ID, campaigns.ActionStart)
		e.waitStatus(c.ID, campaigns.StatusFinished)
		ids := map[string]bool{}
		for _, m := range e.sink.WaitFor(t, 3, 10*time.Second) {
			h := m.Header
			if got := h.Get("List-Unsubscribe-Post"); got != "List-Unsubscribe=One-Click" {
				t.Errorf("List-Unsubscribe-Post %q", got)
			}
			lu := h.Get("List-Unsubscribe")
			if !strings.HasPrefix(lu, "<https://mail.example.org/u/") || !strings.HasSuffix(lu, ">") {
				t.Fatalf("List-Unsubscribe %q, want <https://mail.example.org/u/TOKEN>", lu)
			}
			u, _ := url.Parse(strings.Trim(lu, "<>"))
			fields, _, err := e.signer.Verify(strings.TrimPrefix(u.Path, "/u/"), "unsubscribe", time.Now())
			if err != nil {
				t.Fatalf("List-Unsubscribe token does not verify: %v", err)
			}
			if fields[0] != e.subs[m.To[0]] || fields[1] != "news" || fields[2] != c.ID {
				t.Errorf("unsubscribe token fields %q, want subscriber of %s, list news, campaign %s", fields, m.To[0], c.ID)
			}
			if got := h.Get("List-Id"); got != `"List NEWS" <news.example.org>` {
				t.Errorf("List-Id %q", got)
			}
			id := h.Get("Message-Id")
			if !strings.HasSuffix(id, "."+c.ID+"@example.org>") || ids[id] {
				t.Errorf("Message-ID %q not unique or not of the campaign", id)
			}
			ids[id] = true
			if h.Get("Date") == "" {
				t.Error("no Date")
			}
			if !strings.Contains(m.Text, u.String()) || !strings.Contains(m.Text, "1 rue de la Paix") {
				t.Errorf("text part lacks the footer (unsubscribe link, postal address):\n%s", m.Text)
			}
			if !strings.Contains(m.Subject, "Hello N ") {
				t.Errorf("subject %q not personalised", m.Subject)
			}
		}
		e.wantEachOnce(addrs)
	})
}

// slowCampaign starts a campaign to n people over a relay that takes delay per
// recipient, on two connections, and returns once the first message has arrived.
func slowCampaign(t *testing.T, mode sendMode, n int, delay time.Duration) (*sendEnv, campaigns.Campaign, []string) {
	t.Helper()
	e := newSendEnv(t, mode, envOptions{concurrency: 2})
	e.list("news")
	addrs := e.audience("news", n)
	e.slowRelay(delay)
	c := e.create(campaigns.Input{Lists: []string{"news"}})
	e.act(c.ID, campaigns.ActionStart)
	e.sink.WaitFor(t, 1, 10*time.Second)
	return e, c, addrs
}

// An unsubscribe that has returned stops every later message to that person,
// including the one already queued for them.
func TestCampaignUnsubscribeDuringSlowCampaign(t *testing.T) {
	forEachMode(t, func(t *testing.T, mode sendMode) {
		e, c, addrs := slowCampaign(t, mode, 30, 15*time.Millisecond)
		// The audience is walked in subscriber order: the last one is queued (the
		// window holds all 30) and not yet sent.
		last := addrs[len(addrs)-1]
		if _, err := e.prefs.Unsubscribe(e.ctx, preferences.UnsubscribeInput{Subscriber: e.subs[last], Method: "one_click"}); err != nil {
			t.Fatal(err)
		}
		if n := e.received()[last]; n != 0 {
			t.Fatalf("the campaign reached %s before the unsubscribe: the relay is too fast for this test", last)
		}
		done := e.waitStatus(c.ID, campaigns.StatusFinished)
		if n := e.received()[last]; n != 0 {
			t.Errorf("%s received %d messages after unsubscribing", last, n)
		}
		if s := done.Stats; s.Sent != 29 || s.Skipped != 1 || s.Queued != 30 {
			t.Errorf("stats %+v, want 29 sent, 1 skipped, 30 queued", s)
		}
	})
}

// wantStopped checks that sending stops after a pause or cancel has returned: what
// workers had handed to the relay may still land (a group of up to sendGroup
// messages per job in hand; the status is checked between groups), then nothing
// more, while parked jobs are looked at again.
func (e *sendEnv) wantStopped(total, maxLate int) {
	e.t.Helper()
	n0 := e.sink.Received()
	time.Sleep(400 * time.Millisecond) // negative assertion: let what was in hand land
	n1 := e.sink.Received()
	if late := n1 - n0; late > maxLate {
		e.t.Errorf("%d messages were sent after the campaign stopped, want at most %d", late, maxLate)
	}
	time.Sleep(400 * time.Millisecond) // several PauseRecheck rounds of the parked jobs
	if n2 := e.sink.Received(); n2 != n1 || n2 >= total {
		e.t.Fatalf("still sending after the campaign stopped: %d, then %d messages (of %d)", n1, n2, total)
	}
}

func TestCampaignPauseResume(t *testing.T) {
	forEachMode(t, func(t *testing.T, mode sendMode) {
		e, c, addrs := slowCampaign(t, mode, 40, 25*time.Millisecond)
		if p := e.act(c.ID, campaigns.ActionPause); p.Status != campaigns.StatusPaused {
			t.Fatalf("after pause: status %s", p.Status)
		}
		e.wantStopped(len(addrs), 2*5) // two jobs of five in hand
		if _, err := e.engine.Act(e.ctx, c.ID, campaigns.ActionPause); err == nil {
			t.Error("pausing a paused campaign succeeded")
		}
		if r := e.act(c.ID, campaigns.ActionResume); r.Status != campaigns.StatusRunning {
			t.Fatalf("after resume: status %s", r.Status)
		}
		done := e.waitStatus(c.ID, campaigns.StatusFinished)
		e.wantEachOnce(addrs)
		if done.Stats.Sent != 40 || done.FinishedAt == nil || done.StartedAt == nil {
			t.Errorf("finished campaign %+v", done)
		}
	})
}

func TestCampaignCancel(t *testing.T) {
	forEachMode(t, func(t *testing.T, mode sendMode) {
		e, c, addrs := slowCampaign(t, mode, 40, 25*time.Millisecond)
		if x := e.act(c.ID, campaigns.ActionCancel); x.Status != campaigns.StatusCancelled || x.FinishedAt == nil {
			t.Fatalf("after cancel: %+v", x)
		}
		e.wantStopped(len(addrs), 2*5) // two jobs of five in hand
		if got := e.get(c.ID); got.Stats.Sent != int64(e.sink.Received()) {
			t.Errorf("cancelled campaign counts %d sent, the relay got %d", got.Stats.Sent, e.sink.Received())
		}
		for _, action := range []string{campaigns.ActionStart, campaigns.ActionResume, campaigns.ActionPause, campaigns.ActionCancel} {
			if _, err := e.engine.Act(e.ctx, c.ID, action); err == nil {
				t.Errorf("%s on a cancelled campaign succeeded", action)
			}
		}
		for a, n := range e.received() {
			if n > 1 {
				t.Errorf("%s received %d messages", a, n)
			}
		}
	})
}

// A relay's 4xx is retried until it passes; a 5xx is recorded as failed at once.
func TestCampaignTemporaryRetriedPermanentFailed(t *testing.T) {
	forEachMode(t, func(t *testing.T, mode sendMode) {
		e := newSendEnv(t, mode, envOptions{})
		e.list("news")
		addrs := e.audience("news", 12)
		flaky, dead := addrs[3], addrs[7]
		var mu sync.Mutex
		refusals := 0
		e.sink.FailRcpt(func(rcpt string) *smtp.SMTPError {
			mu.Lock()
			defer mu.Unlock()
			switch {
			case rcpt == flaky && refusals < 2:
				refusals++
				return &smtp.SMTPError{Code: 451, EnhancedCode: smtp.EnhancedCode{4, 2, 0}, Message: "try later"}
			case rcpt == dead:
				return &smtp.SMTPError{Code: 550, EnhancedCode: smtp.EnhancedCode{5, 1, 1}, Message: "no such user"}
			}
			return nil
		})
		c := e.create(campaigns.Input{Lists: []string{"news"}})
		e.act(c.ID, campaigns.ActionStart)
		done := e.waitStatus(c.ID, campaigns.StatusFinished)
		got := e.received()
		if got[flaky] != 1 || got[dead] != 0 {
			t.Errorf("flaky got %d (want 1 after 2 refusals), dead got %d (want 0)", got[flaky], got[dead])
		}
		mu.Lock()
		if refusals != 2 {
			t.Errorf("the flaky address was refused %d times, want 2", refusals)
		}
		mu.Unlock()
		if s := done.Stats; s.Sent != 11 || s.Failed != 1 {
			t.Errorf("stats %+v, want 11 sent and 1 failed", s)
		}
		for _, a := range addrs {
			if a != dead && got[a] != 1 {
				t.Errorf("%s received %d messages, want 1", a, got[a])
			}
		}
	})
}

// outcomeSpy is a tracker that keeps every outcome its worker records.
type outcomeSpy struct {
	campaigns.Tracker
	mu       sync.Mutex
	outcomes []campaigns.Outcome
}

func (s *outcomeSpy) Record(ctx context.Context, campaign string, outcomes []campaigns.Outcome) error {
	s.mu.Lock()
	s.outcomes = append(s.outcomes, outcomes...)
	s.mu.Unlock()
	return s.Tracker.Record(ctx, campaign, outcomes)
}

// A relay's hard bounce that quotes the address (as Postfix does) is queued for the
// store with the address redacted: that queue, in bbolt or Redis, is not sealed.
func TestBounceQueuedWithoutTheAddress(t *testing.T) {
	forEachMode(t, func(t *testing.T, mode sendMode) {
		spy := &outcomeSpy{}
		e := newSendEnv(t, mode, envOptions{workerTracker: func(tr campaigns.Tracker) campaigns.Tracker { spy.Tracker = tr; return spy }})
		e.list("news")
		addrs := e.audience("news", 4)
		dead := addrs[2]
		e.sink.FailRcpt(func(rcpt string) *smtp.SMTPError {
			if rcpt == dead {
				return &smtp.SMTPError{Code: 550, EnhancedCode: smtp.EnhancedCode{5, 1, 1}, Message: "<" + rcpt + ">: Recipient address rejected"}
			}
			return nil
		})
		c := e.create(campaigns.Input{Lists: []string{"news"}})
		e.act(c.ID, campaigns.ActionStart)
		e.waitStatus(c.ID, campaigns.StatusFinished)
		spy.mu.Lock()
		defer spy.mu.Unlock()
		var replies []string
		for _, o := range spy.outcomes {
			if o.Result == campaigns.ResultBounced {
				replies = append(replies, o.Reply)
			}
		}
		if len(replies) != 1 || replies[0] != "550 5.1.1 <<redacted>>: Recipient address rejected" {
			t.Errorf("bounced replies %q, want one, without %s", replies, dead)
		}
	})
}

func TestCampaignScheduledAndTestSend(t *testing.T) {
	forEachMode(t, func(t *testing.T, mode sendMode) {
		e := newSendEnv(t, mode, envOptions{})
		e.list("news")
		e.audience("news", 3)
		at := time.Now().Add(700 * time.Millisecond)
		c := e.create(campaigns.Input{Lists: []string{"news"}, SendAt: &at})
		if err := e.engine.Test(e.ctx, c.ID, []string{"proof@example.net"}); err != nil {
			t.Fatal(err)
		}
		test := e.sink.WaitFor(t, 1, 10*time.Second)[0]
		if test.To[0] != "proof@example.net" || !strings.HasPrefix(test.Subject, "[Test] Hello ") {
			t.Errorf("test message to %v, subject %q", test.To, test.Subject)
		}
		if s := e.act(c.ID, campaigns.ActionStart); s.Status != campaigns.StatusScheduled {
			t.Fatalf("start with a future send_at: status %s, want scheduled", s.Status)
		}
		if e.sink.Received() != 1 {
			t.Fatal("a scheduled campaign sent before its time")
		}
		done := e.waitStatus(c.ID, campaigns.StatusFinished)
		if done.StartedAt == nil || done.StartedAt.Before(at.Add(-time.Millisecond)) {
			t.Errorf("started at %v, before send_at %v", done.StartedAt, at)
		}
		if done.Stats.Sent != 3 || e.sink.Received() != 4 {
			t.Errorf("sent %d, sink %d; want 3 and 4 with the test", done.Stats.Sent, e.sink.Received())
		}
	})
}

// slowStart publishes a running campaign after a delay: the engine's planner reads the
// stored start before the workers can see it.
type slowStart struct {
	campaigns.Tracker
	delay time.Duration
}

func (s slowStart) Publish(ctx context.Context, def *campaigns.Definition) error {
	if def.Status == campaigns.StatusRunning {
		time.Sleep(s.delay)
	}
	return s.Tracker.Publish(ctx, def)
}

// TestCampaignJobsWaitForTheStartToBePublished: a start is stored, then published to
// the workers; here the publication takes 400 ms, over several of the engine's polls,
// so that its planner reads the stored start first. The jobs wait for the publication:
// every recipient gets the campaign once, none is dropped as of an unknown campaign
// (a first start) or not sent for its draft status (a start after a test send, which
// published the draft).
func TestCampaignJobsWaitForTheStartToBePublished(t *testing.T) {
	forEachMode(t, func(t *testing.T, mode sendMode) {
		for _, tested := range []bool{false, true} {
			t.Run(map[bool]string{false: "first start", true: "after a test send"}[tested], func(t *testing.T) {
				e := newSendEnv(t, mode, envOptions{engineTracker: func(tr campaigns.Tracker) campaigns.Tracker {
					return slowStart{Tracker: tr, delay: 400 * time.Millisecond}
				}})
				e.list("news")
				addrs := e.audience("news", 12)
				c := e.create(campaigns.Input{Lists: []string{"news"}})
				sent := 0
				if tested {
					if err := e.engine.Test(e.ctx, c.ID, []string{"proof@example.net"}); err != nil {
						t.Fatal(err)
					}
					e.sink.WaitFor(t, 1, 10*time.Second)
					sent = 1
				}
				e.act(c.ID, campaigns.ActionStart)
				done := e.waitStatus(c.ID, campaigns.StatusFinished)
				e.wantEachOnce(addrs)
				if s := done.Stats; s.Sent != 12 || s.Skipped != 0 || s.Failed != 0 || e.sink.Received() != 12+sent {
					t.Errorf("stats %+v, relay %d: want 12 sent", s, e.sink.Received())
				}
			})
		}
	})
}

// Two workers share one campaign without sending anyone two messages.
func TestCampaignTwoWorkersNoDuplicates(t *testing.T) {
	forEachMode(t, func(t *testing.T, mode sendMode) {
		e := newSendEnv(t, mode, envOptions{workers: 2, concurrency: 3})
		e.list("news")
		addrs := e.audience("news", 120)
		c := e.create(campaigns.Input{Lists: []string{"news"}})
		e.act(c.ID, campaigns.ActionStart)
		done := e.waitStatus(c.ID, campaigns.StatusFinished)
		e.wantEachOnce(addrs)
		if done.Stats.Sent != 120 {
			t.Errorf("sent %d, want 120", done.Stats.Sent)
		}
	})
}

// Recipients claimed by a delivery that died (or still runs) are looked at again once
// the claim has run out, not counted as done.
func TestCampaignRecipientsOfAnotherClaimAreNotLost(t *testing.T) {
	forEachMode(t, func(t *testing.T, mode sendMode) {
		e := newSendEnv(t, mode, envOptions{visibility: 300 * time.Millisecond})
		e.list("news")
		addrs := e.audience("news", 10)
		c := e.create(campaigns.Input{Lists: []string{"news"}})
		// A worker that died after claiming two recipients, its claim alive 300 ms more.
		// The campaign is published as the engine publishes it: a bare definition would
		// let the planner, which waits for the running one, queue jobs that workers
		// could not render (no subject) before the start's own publish replaced it.
		def := &campaigns.Definition{ID: c.ID, Name: c.Name, Subject: c.Subject, HTML: c.HTML, Text: c.Text,
			Lists: c.Lists, Status: campaigns.StatusRunning}
		if err := e.tracker.Publish(e.ctx, def); err != nil {
			t.Fatal(err)
		}
		held := []preferences.Recipient{{ID: e.subs[addrs[2]], Lists: []string{"news"}}, {ID: e.subs[addrs[6]], Lists: []string{"news"}}}
		vs, err := e.tracker.Claim(e.ctx, c.ID, held, time.Now().Add(300*time.Millisecond))
		if err != nil || vs[0] != campaigns.Send || vs[1] != campaigns.Send {
			t.Fatalf("claim: %v, %v", vs, err)
		}
		e.act(c.ID, campaigns.ActionStart)
		done := e.waitStatus(c.ID, campaigns.StatusFinished)
		e.wantEachOnce(addrs)
		if done.Stats.Sent != 10 {
			t.Errorf("sent %d, want 10", done.Stats.Sent)
		}
	})
}

// stalledRecords is a tracker whose result writes hang until released, as when the
// disk or Redis stalls: every result the workers send stays undurable.
type stalledRecords struct {
	campaigns.Tracker
	release chan struct{}
}

func (s *stalledRecords) Record(ctx context.Context, campaign string, outcomes []campaigns.Outcome) error {
	<-s.release
	return s.Tracker.Record(ctx, campaign, outcomes)
}

// What a crash can make go twice is bounded: while no result becomes durable, the
// workers hand the relay at most MaxGroups groups (of 10), however many jobs and
// connections they have; once results are written again, the campaign finishes.
func TestUnrecordedSendsAreBounded(t *testing.T) {
	stall := &stalledRecords{release: make(chan struct{})}
	released := false
	release := func() {
		if !released {
			released = true
			close(stall.release)
		}
	}
	t.Cleanup(release)
	e, c := startTwoSlots(t, 120, func(tr campaigns.Tracker) campaigns.Tracker { stall.Tracker = tr; return stall })
	time.Sleep(500 * time.Millisecond) // negative assertion: give the four jobs in hand time to send more
	if n := e.sink.Received(); n != 2*10 {
		t.Fatalf("%d messages handed to the relay while no result was durable, want exactly 2 groups of 10", n)
	}
	release()
	e.waitStatus(c.ID, campaigns.StatusFinished)
	if n := e.sink.Received(); n != 120 {
		t.Errorf("%d messages in all, want 120", n)
	}
}

// startTwoSlots starts a campaign to n people of list "news" with the embedded queue:
// four jobs of 20 in hand, two send groups between their claim and their durable
// record at most, the workers seeing the tracker through wrap. It returns once the
// relay has the first two groups.
func startTwoSlots(t *testing.T, n int, wrap func(campaigns.Tracker) campaigns.Tracker) (*sendEnv, campaigns.Campaign) {
	t.Helper()
	e := newSendEnv(t, modeBolt, envOptions{concurrency: 4, batch: 20, window: 200, maxGroups: 2, workerTracker: wrap})
	e.list("news")
	e.audience("news", n)
	c := e.create(campaigns.Input{Lists: []string{"news"}})
	e.act(c.ID, campaigns.ActionStart)
	e.sink.WaitFor(t, 20, 10*time.Second)
	return e, c
}

// heldCount is a consent book whose audience counts wait for release.
type heldCount struct {
	campaigns.Book
	release chan struct{}
}

func (h heldCount) CountAudience(ctx context.Context, lists []string) (int64, error) {
	select {
	case <-h.release:
	case <-ctx.Done():
		return 0, ctx.Err()
	}
	return h.Book.CountAudience(ctx, lists)
}

// heldAudience is a Book whose first read of the audience waits until fail is closed
// and then fails: the planner stops without having queued anyone.
type heldAudience struct {
	campaigns.Book
	reading chan struct{} // closed when the first read starts
	fail    chan struct{}
	once    *sync.Once
}

func (h heldAudience) Audience(ctx context.Context, lists []string, cur preferences.AudienceCursor, max int,
	data bool) ([]preferences.Recipient, preferences.AudienceCursor, bool, error) {
	first := false
	h.once.Do(func() { first = true; close(h.reading) })
	if first {
		<-h.fail
		return nil, cur, false, errors.New("audience unavailable")
	}
	return h.Book.Audience(ctx, lists, cur, max, data)
}

// A campaign whose planner stops before it queued anyone (paused while it read the
// first recipients, and that read failing) still has its audience counted: the count
// waits for the first jobs or for the planner to stop, whichever comes first.
func TestAudienceCountedWhenThePlannerStopsFirst(t *testing.T) {
	forEachMode(t, func(t *testing.T, mode sendMode) {
		reading, fail := make(chan struct{}), make(chan struct{})
		e := newSendEnv(t, mode, envOptions{book: func(b campaigns.Book) campaigns.Book {
			return heldAudience{Book: b, reading: reading, fail: fail, once: &sync.Once{}}
		}})
		e.list("a")
		e.subscribe("one@example.org", true, "a")
		e.subscribe("two@example.org", true, "a")
		c := e.create(campaigns.Input{Lists: []string{"a"}})
		e.act(c.ID, campaigns.ActionStart)
		select {
		case <-reading:
		case <-time.After(10 * time.Second):
			t.Fatal("the planner never read the audience")
		}
		e.act(c.ID, campaigns.ActionPause)
		close(fail)
		got := e.waitCampaign(c.ID, "audience counted", func(c campaigns.Campaign) bool { return c.Stats.Audience == 2 })
		if got.Status != campaigns.StatusPaused || got.Stats.Sent != 0 || got.Stats.Queued != 0 {
			t.Errorf("counted campaign: %s, %d queued, %d sent; want paused with nothing queued", got.Status,
				got.Stats.Queued, got.Stats.Sent)
		}
	})
}

// A campaign is finished only once its audience is counted, however long the count
// takes: the count is held while everyone is sent to, and the campaign must stay
// running until it is released (then its stats show who was excluded). Without the
// wait, it finishes within the engine's next poll with nothing excluded.
func TestCampaignIsFinishedOnlyOnceCounted(t *testing.T) {
	forEachMode(t, func(t *testing.T, mode sendMode) {
		release := make(chan struct{})
		e := newSendEnv(t, mode, envOptions{book: func(b campaigns.Book) campaigns.Book { return heldCount{b, release} }})
		e.list("a")
		want := []string{e.subscribe("one@example.org", true, "a"), e.subscribe("two@example.org", true, "a")}
		unsub := e.subscribe("gone@example.org", true, "a")
		if _, err := e.prefs.Unsubscribe(e.ctx, preferences.UnsubscribeInput{Subscriber: unsub, Method: "api"}); err != nil {
			t.Fatal(err)
		}
		c := e.create(campaigns.Input{Lists: []string{"a"}})
		e.act(c.ID, campaigns.ActionStart)
		e.waitCampaign(c.ID, "sent to everyone", func(c campaigns.Campaign) bool { return c.Stats.Sent == int64(len(want)) })
		// Ten of the engine's polls with the count held: the campaign stays running.
		for deadline := time.Now().Add(time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
			if got := e.get(c.ID); got.Status != campaigns.StatusRunning {
				t.Fatalf("campaign %s with its audience not counted (stats %+v)", got.Status, got.Stats)
			}
		}
		close(release)
		done := e.waitStatus(c.ID, campaigns.StatusFinished)
		if done.Stats.Audience != int64(len(want)) || done.Stats.Excluded.Unsubscribed != 1 {
			t.Errorf("finished with audience %d and %d unsubscribed excluded, want %d and 1", done.Stats.Audience,
				done.Stats.Excluded.Unsubscribed, len(want))
		}
	})
}

// Latest gives the newest campaigns, newest first, as listing all of them and keeping
// the last would, with their stats; only those are read.
func TestLatestCampaigns(t *testing.T) {
	forEachMode(t, func(t *testing.T, mode sendMode) {
		e := newSendEnv(t, mode, envOptions{})
		e.list("a")
		e.subscribe("one@example.org", true, "a")
		for i := range 7 {
			e.create(campaigns.Input{Name: fmt.Sprintf("Campaign %d", i), Lists: []string{"a"}})
		}
		sent := e.create(campaigns.Input{Name: "Sent", Lists: []string{"a"}})
		e.act(sent.ID, campaigns.ActionStart)
		e.waitStatus(sent.ID, campaigns.StatusFinished)

		all, _, err := e.engine.List(e.ctx, "", 0)
		if err != nil {
			t.Fatal(err)
		}
		latest, err := e.engine.Latest(e.ctx, 5)
		if err != nil {
			t.Fatal(err)
		}
		if len(all) != 8 || len(latest) != 5 {
			t.Fatalf("%d campaigns listed, %d latest; want 8 and 5", len(all), len(latest))
		}
		for i, c := range latest {
			want := all[len(all)-1-i]
			if c.ID != want.ID || c.Status != want.Status || !reflect.DeepEqual(c.Stats, want.Stats) {
				t.Errorf("latest[%d] = %s %s %+v, want %s %s %+v", i, c.ID, c.Status, c.Stats, want.ID, want.Status, want.Stats)
			}
			// Ids sort by their creation's millisecond; within one, by their random part.
			if ms, prev := c.CreatedAt.UnixMilli(), latest[max(i-1, 0)].CreatedAt.UnixMilli(); ms > prev {
				t.Errorf("latest[%d] created at %d ms, after latest[%d] (%d ms): not newest first", i, ms, i-1, prev)
			}
		}
		if got, _ := e.engine.Latest(e.ctx, 20); len(got) != 8 {
			t.Errorf("Latest(20) of 8 campaigns: %d", len(got))
		}
	})
}

// A campaign's per-domain counters name the large mailbox providers and nothing else:
// a person's own domain names them as their address does, so it is counted under
// "other" and is nowhere in the stats nor in the tracker's counters.
func TestDomainCountersNameOnlyMailboxProviders(t *testing.T) {
	forEachMode(t, func(t *testing.T, mode sendMode) {
		e := newSendEnv(t, mode, envOptions{})
		e.list("news")
		addrs := []string{"ana@gmail.com", "ben@gmail.com", "jean@jean-dupont.example", "team@example.org"}
		for _, a := range addrs {
			e.subscribe(a, true, "news")
		}
		c := e.create(campaigns.Input{Lists: []string{"news"}})
		e.act(c.ID, campaigns.ActionStart)
		st := e.waitStatus(c.ID, campaigns.StatusFinished).Stats
		e.wantEachOnce(addrs)
		want := map[string]int64{"gmail.com": 2, campaigns.OtherDomain: 2}
		if len(st.Domains) != len(want) {
			t.Errorf("domains %+v, want %v", st.Domains, want)
		}
		for d, n := range want {
			if st.Domains[d].Sent != n {
				t.Errorf("domain %s: %+v, want %d sent", d, st.Domains[d], n)
			}
		}
		counts, err := e.tracker.Counts(e.ctx, c.ID)
		if err != nil {
			t.Fatal(err)
		}
		raw, _ := json.Marshal(st)
		for d := range counts.Domains {
			if _, ok := want[d]; !ok {
				t.Errorf("the tracker counts domain %q", d)
			}
		}
		if strings.Contains(string(raw), "jean-dupont") || strings.Contains(string(raw), "example.org") {
			t.Errorf("a person's own domain in the stats: %s", raw)
		}
		// A bounce report and a complaint about Jean's message count under other too,
		// and the campaign's record keeps no trace of the domain.
		e.engine.Bounced(e.ctx, c.ID, e.subs["jean@jean-dupont.example"])
		e.engine.Complained(e.ctx, c.ID, e.subs["jean@jean-dupont.example"])
		if o := e.get(c.ID).Stats.Domains[campaigns.OtherDomain]; o.Bounced != 1 || o.Complained != 1 {
			t.Errorf("other after Jean's bounce and complaint: %+v, want 1 bounced and 1 complained", o)
		}
		file, err := os.ReadFile(e.db.Path())
		if err != nil {
			t.Fatal(err)
		}
		if bytes.Contains(file, []byte("jean-dupont")) {
			t.Error("the data file names Jean's domain")
		}
	})
}
