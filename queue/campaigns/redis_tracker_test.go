package campaigns_test

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"slices"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"consentmail/preferences"
	"consentmail/queue/campaigns"
	"consentmail/queue/queuetest"
)

// TestRedisTracker runs every check against one private redis-server, each in a
// parallel subtest under its own key prefix. (One server per top-level test, stopped
// at its cleanup, rather than one per package in a TestMain, which the package's other
// test files may want for themselves.)
func TestRedisTracker(t *testing.T) {
	addr := queuetest.Redis(t)
	for _, tc := range []struct {
		name string
		fn   func(*testing.T, *trackerEnv)
	}{
		{"PublishDefinition", testTrackerPublishDefinition},
		{"DefinitionNotFound", testTrackerDefinitionNotFound},
		{"ClaimNotRunning", testTrackerClaimNotRunning},
		{"ClaimDeadline", testTrackerClaimDeadline},
		{"FlightKeyLivesAsLongAsItsLongestClaim", testTrackerFlightTTL},
		{"ClaimSkip", testTrackerClaimSkip},
		{"Restore", testTrackerRestore},
		{"Record", testTrackerRecord},
		{"Counts", testTrackerCounts},
		{"Result", testTrackerResult},
		{"BadIDs", testTrackerBadIDs},
		{"ManyRecipients", testTrackerManyRecipients},
		{"HardBounces", testTrackerHardBounces},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			tc.fn(t, newTrackerEnv(t, addr))
		})
	}
}

// trackerEnv is one tracker under test, with its clock and its client.
type trackerEnv struct {
	ctx    context.Context
	clock  *queuetest.Clock
	client *redis.Client
	prefix string
	tr     *campaigns.RedisTracker
}

var trackerPrefixSeq atomic.Int64

func newTrackerEnv(tb testing.TB, addr string) *trackerEnv {
	tb.Helper()
	client := redis.NewClient(&redis.Options{Addr: addr})
	tb.Cleanup(func() { client.Close() })
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	tb.Cleanup(cancel)
	clock := queuetest.NewClock(epoch)
	prefix := fmt.Sprintf("test:%s:%d:", tb.Name(), trackerPrefixSeq.Add(1))
	return &trackerEnv{ctx: ctx, clock: clock, client: client, prefix: prefix,
		tr: campaigns.NewRedisTracker(client, campaigns.RedisTrackerOptions{Prefix: prefix, Now: clock.Now})}
}

// publish publishes a minimal campaign id with status.
func (e *trackerEnv) publish(tb testing.TB, id, status string) {
	tb.Helper()
	def := &campaigns.Definition{ID: id, Name: id, Subject: "s", HTML: "<p>h</p>", From: "a@example.org",
		Lists: []string{"news"}, Status: status}
	if err := e.tr.Publish(e.ctx, def); err != nil {
		tb.Fatalf("Publish(%s, %s): %v", id, status, err)
	}
}

func (e *trackerEnv) claim(tb testing.TB, campaign string, until time.Time, rs ...preferences.Recipient) []campaigns.Verdict {
	tb.Helper()
	vs, err := e.tr.Claim(e.ctx, campaign, rs, until)
	if err != nil {
		tb.Fatalf("Claim: %v", err)
	}
	if len(vs) != len(rs) {
		tb.Fatalf("Claim returned %d verdicts for %d recipients", len(vs), len(rs))
	}
	return vs
}

func (e *trackerEnv) record(tb testing.TB, campaign string, outcomes ...campaigns.Outcome) {
	tb.Helper()
	if err := e.tr.Record(e.ctx, campaign, outcomes); err != nil {
		tb.Fatalf("Record: %v", err)
	}
}

func (e *trackerEnv) wantCounts(tb testing.TB, campaign string, want campaigns.Counts) {
	tb.Helper()
	got, err := e.tr.Counts(e.ctx, campaign)
	if err != nil {
		tb.Fatalf("Counts: %v", err)
	}
	got.Domains = nil // checkHardBounces checks them
	if !reflect.DeepEqual(got, want) {
		tb.Fatalf("Counts: got %+v, want %+v", got, want)
	}
}

func (e *trackerEnv) wantResult(tb testing.TB, campaign, sub string, want campaigns.Result) {
	tb.Helper()
	got, err := e.tr.Result(e.ctx, campaign, sub)
	if err != nil {
		tb.Fatalf("Result(%s): %v", sub, err)
	}
	if got != want {
		tb.Fatalf("Result(%s): got %q, want %q", sub, got, want)
	}
}

func wantVerdicts(tb testing.TB, what string, got []campaigns.Verdict, want ...campaigns.Verdict) {
	tb.Helper()
	if !slices.Equal(got, want) {
		tb.Fatalf("%s: got verdicts %v, want %v", what, got, want)
	}
}

func rcpt(id string, lists ...string) preferences.Recipient {
	return preferences.Recipient{ID: id, Email: id + "@example.org", Lists: lists}
}

func testTrackerPublishDefinition(t *testing.T, e *trackerEnv) {
	in := &campaigns.Definition{ID: "c1", Name: "Spring", Subject: "Hello {{.Name}}", HTML: "<p>hi</p>",
		Text: "hi", From: "news@example.org", Lists: []string{"news", "deals"},
		ListNames: map[string]string{"news": "News", "deals": "Deals"}, Track: true, Status: campaigns.StatusRunning}
	if err := e.tr.Publish(e.ctx, in); err != nil {
		t.Fatalf("Publish: %v", err)
	}
	got, err := e.tr.Definition(e.ctx, "c1")
	if err != nil {
		t.Fatalf("Definition: %v", err)
	}
	if !reflect.DeepEqual(got, in) {
		t.Fatalf("Definition: got %+v, want %+v", *got, *in)
	}

	// A change of status is published again and read back.
	paused := *in
	paused.Status = campaigns.StatusPaused
	if err := e.tr.Publish(e.ctx, &paused); err != nil {
		t.Fatalf("Publish paused: %v", err)
	}
	if got, err = e.tr.Definition(e.ctx, "c1"); err != nil || got.Status != campaigns.StatusPaused {
		t.Fatalf("Definition after pausing: got %+v, %v, want status %q", got, err, campaigns.StatusPaused)
	}

	// The status key is the authority: Claim and Definition read the same one.
	if err := e.client.Set(e.ctx, e.prefix+"{cm}:st:c1", campaigns.StatusCancelled, 0).Err(); err != nil {
		t.Fatal(err)
	}
	if got, err = e.tr.Definition(e.ctx, "c1"); err != nil || got.Status != campaigns.StatusCancelled {
		t.Fatalf("Definition with status key %q: got %+v, %v", campaigns.StatusCancelled, got, err)
	}

	for _, bad := range []*campaigns.Definition{nil, {ID: "", Status: campaigns.StatusRunning}, {ID: "c2", Status: "sending"}} {
		if err := e.tr.Publish(e.ctx, bad); err == nil {
			t.Errorf("Publish(%+v): got no error, want one", bad)
		}
	}
}

func testTrackerDefinitionNotFound(t *testing.T, e *trackerEnv) {
	def, err := e.tr.Definition(e.ctx, "missing")
	if !errors.Is(err, campaigns.ErrCampaignNotFound) {
		t.Fatalf("Definition(missing): got %+v, %v, want an error wrapping %v", def, err, campaigns.ErrCampaignNotFound)
	}
}

func testTrackerClaimNotRunning(t *testing.T, e *trackerEnv) {
	for _, tc := range []struct {
		name, status string // status "" publishes nothing
		want         campaigns.Verdict
	}{
		{"paused", campaigns.StatusPaused, campaigns.Paused},
		{"cancelled", campaigns.StatusCancelled, campaigns.Cancelled},
		{"finished", campaigns.StatusFinished, campaigns.Cancelled},
		{"draft", campaigns.StatusDraft, campaigns.Cancelled},
		{"scheduled", campaigns.StatusScheduled, campaigns.Cancelled},
		{"missing", "", campaigns.Cancelled},
	} {
		t.Run(tc.name, func(t *testing.T) {
			id := "c-" + tc.name
			if tc.status != "" {
				e.publish(t, id, tc.status)
			}
			vs := e.claim(t, id, e.clock.Now().Add(time.Minute), rcpt("a", "news"), rcpt("b", "news"))
			wantVerdicts(t, "Claim", vs, tc.want, tc.want)
			// Nothing was claimed or counted.
			e.wantCounts(t, id, campaigns.Counts{})
			if n, err := e.client.Exists(e.ctx, e.prefix+"{cm}:r:"+id).Result(); err != nil || n != 0 {
				t.Fatalf("results hash exists = %d, %v, want 0", n, err)
			}
		})
	}

	// Resuming lets the same recipients be claimed.
	e.publish(t, "c-paused", campaigns.StatusRunning)
	vs := e.claim(t, "c-paused", e.clock.Now().Add(time.Minute), rcpt("a", "news"), rcpt("b", "news"))
	wantVerdicts(t, "Claim after resuming", vs, campaigns.Send, campaigns.Send)
}

func testTrackerClaimDeadline(t *testing.T, e *trackerEnv) {
	e.publish(t, "c", campaigns.StatusRunning)
	until := e.clock.Now().Add(time.Minute)
	wantVerdicts(t, "first Claim", e.claim(t, "c", until, rcpt("a", "news")), campaigns.Send)
	e.wantResult(t, "c", "a", 0) // a claim is no result

	e.clock.Advance(59 * time.Second)
	wantVerdicts(t, "Claim before the deadline", e.claim(t, "c", e.clock.Now().Add(time.Minute), rcpt("a", "news")), campaigns.Busy)
	e.clock.Advance(time.Second) // exactly at the deadline: the claim has expired
	wantVerdicts(t, "Claim at the deadline", e.claim(t, "c", e.clock.Now().Add(time.Minute), rcpt("a", "news")), campaigns.Send)
	// The new claim holds in turn.
	wantVerdicts(t, "Claim under the new claim", e.claim(t, "c", e.clock.Now().Add(time.Minute), rcpt("a", "news")), campaigns.Busy)

	// A recorded result is final, however late.
	e.record(t, "c", campaigns.Outcome{Subscriber: "a", Result: campaigns.ResultSent})
	e.clock.Advance(24 * time.Hour)
	wantVerdicts(t, "Claim after Record", e.claim(t, "c", e.clock.Now().Add(time.Minute), rcpt("a", "news")), campaigns.Done)

	// A subscriber twice in one job is claimed once.
	wantVerdicts(t, "Claim with a repeat", e.claim(t, "c", e.clock.Now().Add(time.Minute), rcpt("b", "news"), rcpt("b", "news")),
		campaigns.Send, campaigns.Done)
	e.wantCounts(t, "c", campaigns.Counts{Sent: 1})
}

// A subscriber's in-flight key (what a withdrawal waits on) gets a TTL when it is
// made, and a claim of another campaign with an earlier deadline never shortens it:
// the key outlives every claim it holds.
func testTrackerFlightTTL(t *testing.T, e *trackerEnv) {
	e.publish(t, "long", campaigns.StatusRunning)
	e.publish(t, "short", campaigns.StatusRunning)
	fl := e.prefix + "{cm}:fl:a"
	ttl := func() time.Duration {
		d, err := e.client.PTTL(e.ctx, fl).Result()
		if err != nil {
			t.Fatal(err)
		}
		return d
	}
	wantVerdicts(t, "long claim", e.claim(t, "long", e.clock.Now().Add(10*time.Minute), rcpt("a", "news")), campaigns.Send)
	first := ttl()
	if first < 10*time.Minute {
		t.Fatalf("a new in-flight key lives %v, want at least its claim's 10 minutes", first)
	}
	wantVerdicts(t, "short claim", e.claim(t, "short", e.clock.Now().Add(time.Minute), rcpt("a", "news")), campaigns.Send)
	if d := ttl(); d < 10*time.Minute {
		t.Errorf("after a shorter claim the key lives %v, want the longer claim's (at least 10 minutes)", d)
	}
}

func testTrackerClaimSkip(t *testing.T, e *trackerEnv) {
	e.publish(t, "c", campaigns.StatusRunning)
	for _, w := range []struct {
		sub   string
		lists []string
	}{
		{"whole", nil},
		{"both", []string{"news"}},
		{"both", []string{"deals", "news"}}, // news again: no change
		{"one", []string{"news"}},
		{"other", []string{"events"}},
	} {
		if err := e.tr.Withdraw(e.ctx, w.sub, w.lists); err != nil {
			t.Fatalf("Withdraw(%s, %q): %v", w.sub, w.lists, err)
		}
	}
	// Withdrawing a list again adds nothing to the set.
	if got, err := e.client.HGet(e.ctx, e.prefix+"{cm}:wd", "both").Result(); err != nil || got != "news,deals" {
		t.Fatalf("withdrawn lists of both: got %q, %v, want %q", got, err, "news,deals")
	}
	for _, tc := range []struct {
		name string
		r    preferences.Recipient
		want campaigns.Verdict
	}{
		{"withdrawn as a whole", rcpt("whole", "news"), campaigns.Skip},
		{"every list withdrawn", rcpt("both", "news", "deals"), campaigns.Skip},
		{"one list of two still subscribed", rcpt("one", "news", "deals"), campaigns.Send},
		{"only another list withdrawn", rcpt("other", "news"), campaigns.Send},
		{"no lists left", rcpt("none"), campaigns.Skip},
		{"nothing withdrawn", rcpt("fresh", "news"), campaigns.Send},
	} {
		t.Run(tc.name, func(t *testing.T) {
			campaign := "c"
			vs := e.claim(t, campaign, e.clock.Now().Add(time.Minute), tc.r)
			wantVerdicts(t, "Claim", vs, tc.want)
			want := campaigns.Result(0)
			if tc.want == campaigns.Skip {
				want = campaigns.ResultSkipped // recorded by Claim itself
			}
			e.wantResult(t, campaign, tc.r.ID, want)
		})
	}
	e.wantCounts(t, "c", campaigns.Counts{Skipped: 3})
	// A skip is a result: claiming again finds it done, and counts no second skip.
	wantVerdicts(t, "Claim again", e.claim(t, "c", e.clock.Now().Add(time.Minute), rcpt("whole", "news")), campaigns.Done)
	e.wantCounts(t, "c", campaigns.Counts{Skipped: 3})
}

func testTrackerRestore(t *testing.T, e *trackerEnv) {
	e.publish(t, "c", campaigns.StatusRunning)
	steps := []struct {
		op    string // "withdraw" or "restore"
		lists []string
	}{
		{"withdraw", nil},
		{"withdraw", []string{"news", "deals"}},
		{"restore", nil},                    // the per-list withdrawals remain
		{"restore", []string{"news"}},       // deals remains
		{"restore", []string{"news"}},       // idempotent
		{"withdraw", []string{"deals"}},     // idempotent
		{"restore", []string{"deals", "x"}}, // x was never withdrawn
		{"restore", []string{"deals"}},      // nothing left to restore
		{"restore", nil},                    // idempotent
		{"withdraw", []string{}},            // withdraws nothing
	}
	for _, s := range steps {
		var err error
		if s.op == "withdraw" {
			err = e.tr.Withdraw(e.ctx, "a", s.lists)
		} else {
			err = e.tr.Restore(e.ctx, "a", s.lists)
		}
		if err != nil {
			t.Fatalf("%s(%q): %v", s.op, s.lists, err)
		}
	}
	// Everything is restored: the subscriber is in neither hash.
	for _, k := range []string{"ws", "wd"} {
		if n, err := e.client.HExists(e.ctx, e.prefix+"{cm}:"+k, "a").Result(); err != nil || n {
			t.Fatalf("HEXISTS %s a = %v, %v, want false", k, n, err)
		}
	}
	wantVerdicts(t, "Claim after restoring", e.claim(t, "c", e.clock.Now().Add(time.Minute), rcpt("a", "news", "deals")), campaigns.Send)

	// Each step of the way, one campaign per step.
	check := func(campaign string, want campaigns.Verdict) {
		t.Helper()
		e.publish(t, campaign, campaigns.StatusRunning)
		wantVerdicts(t, "Claim in "+campaign, e.claim(t, campaign, e.clock.Now().Add(time.Minute), rcpt("b", "news", "deals")), want)
	}
	mustDo := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	mustDo(e.tr.Withdraw(e.ctx, "b", nil))
	check("s1", campaigns.Skip)
	mustDo(e.tr.Restore(e.ctx, "b", nil))
	check("s2", campaigns.Send)
	mustDo(e.tr.Withdraw(e.ctx, "b", []string{"news", "deals"}))
	check("s3", campaigns.Skip)
	mustDo(e.tr.Restore(e.ctx, "b", []string{"deals"}))
	check("s4", campaigns.Send)
}

func testTrackerRecord(t *testing.T, e *trackerEnv) {
	e.publish(t, "c", campaigns.StatusRunning)
	e.claim(t, "c", e.clock.Now().Add(time.Minute), rcpt("a", "news"), rcpt("b", "news"), rcpt("c", "news"))
	e.record(t, "c") // nothing
	e.record(t, "c",
		campaigns.Outcome{Subscriber: "a", Result: campaigns.ResultSent},
		campaigns.Outcome{Subscriber: "b", Result: campaigns.ResultFailed},
		campaigns.Outcome{Subscriber: "c", Result: campaigns.ResultSent})
	e.wantCounts(t, "c", campaigns.Counts{Sent: 2, Failed: 1})

	// Recording again never counts twice: same result, then a changed one.
	e.record(t, "c", campaigns.Outcome{Subscriber: "a", Result: campaigns.ResultSent})
	e.wantCounts(t, "c", campaigns.Counts{Sent: 2, Failed: 1})
	e.record(t, "c", campaigns.Outcome{Subscriber: "b", Result: campaigns.ResultSent})
	e.wantCounts(t, "c", campaigns.Counts{Sent: 3})
	e.wantResult(t, "c", "b", campaigns.ResultSent)

	// Within one batch, the last outcome of a subscriber wins and counts once.
	e.record(t, "c",
		campaigns.Outcome{Subscriber: "d", Result: campaigns.ResultFailed},
		campaigns.Outcome{Subscriber: "d", Result: campaigns.ResultSkipped},
		campaigns.Outcome{Subscriber: "c", Result: campaigns.ResultFailed})
	e.wantCounts(t, "c", campaigns.Counts{Sent: 2, Failed: 1, Skipped: 1})
	e.wantResult(t, "c", "d", campaigns.ResultSkipped)

	// Record ends the claim: the recipient is done, even after the deadline.
	e.clock.Advance(time.Hour)
	wantVerdicts(t, "Claim after Record", e.claim(t, "c", e.clock.Now().Add(time.Minute), rcpt("a", "news")), campaigns.Done)
	if err := e.tr.Record(e.ctx, "c", []campaigns.Outcome{{Subscriber: "a", Result: 'x'}}); err == nil {
		t.Fatal("Record with result 'x': got no error, want one")
	}
}

func testTrackerCounts(t *testing.T, e *trackerEnv) {
	e.wantCounts(t, "never", campaigns.Counts{})
	e.publish(t, "c", campaigns.StatusRunning)
	if err := e.tr.Withdraw(e.ctx, "w", nil); err != nil {
		t.Fatal(err)
	}
	until := e.clock.Now().Add(time.Minute)
	rs := []preferences.Recipient{rcpt("a", "news"), rcpt("b", "news"), rcpt("w", "news")}
	wantVerdicts(t, "first Claim", e.claim(t, "c", until, rs...), campaigns.Send, campaigns.Send, campaigns.Skip)
	e.wantCounts(t, "c", campaigns.Counts{Skipped: 1})
	// A redelivered job: every recipient is claimed (busy) or recorded (done).
	wantVerdicts(t, "redelivery", e.claim(t, "c", until, rs...), campaigns.Busy, campaigns.Busy, campaigns.Done)
	e.wantCounts(t, "c", campaigns.Counts{Skipped: 1})
	e.record(t, "c", campaigns.Outcome{Subscriber: "a", Result: campaigns.ResultSent},
		campaigns.Outcome{Subscriber: "b", Result: campaigns.ResultFailed})
	e.wantCounts(t, "c", campaigns.Counts{Sent: 1, Failed: 1, Skipped: 1})
	if got := (campaigns.Counts{Sent: 1, Failed: 1, Skipped: 1}).Settled(); got != 3 {
		t.Fatalf("Settled: got %d, want 3", got)
	}
	// Counters are per campaign.
	e.wantCounts(t, "other", campaigns.Counts{})
}

func testTrackerResult(t *testing.T, e *trackerEnv) {
	e.publish(t, "c", campaigns.StatusRunning)
	e.wantResult(t, "c", "a", 0) // nothing
	e.claim(t, "c", e.clock.Now().Add(time.Minute), rcpt("a", "news"), rcpt("b", "news"), rcpt("k", "news"))
	e.wantResult(t, "c", "a", 0) // claimed only
	e.record(t, "c", campaigns.Outcome{Subscriber: "a", Result: campaigns.ResultSent},
		campaigns.Outcome{Subscriber: "b", Result: campaigns.ResultFailed},
		campaigns.Outcome{Subscriber: "k", Result: campaigns.ResultSkipped})
	e.wantResult(t, "c", "a", campaigns.ResultSent)
	e.wantResult(t, "c", "b", campaigns.ResultFailed)
	e.wantResult(t, "c", "k", campaigns.ResultSkipped)
	e.wantResult(t, "other", "a", 0) // results are per campaign
}

func testTrackerBadIDs(t *testing.T, e *trackerEnv) {
	e.publish(t, "c", campaigns.StatusRunning)
	until := e.clock.Now().Add(time.Minute)
	for _, tc := range []struct {
		name string
		call func() error
	}{
		{"Claim subscriber with comma", func() error {
			_, err := e.tr.Claim(e.ctx, "c", []preferences.Recipient{rcpt("ok", "news"), rcpt("a,b", "news")}, until)
			return err
		}},
		{"Claim empty subscriber", func() error {
			_, err := e.tr.Claim(e.ctx, "c", []preferences.Recipient{rcpt("", "news")}, until)
			return err
		}},
		{"Claim list with comma", func() error {
			_, err := e.tr.Claim(e.ctx, "c", []preferences.Recipient{rcpt("ok", "news,deals")}, until)
			return err
		}},
		{"Claim empty campaign", func() error {
			_, err := e.tr.Claim(e.ctx, "", []preferences.Recipient{rcpt("ok", "news")}, until)
			return err
		}},
		{"Record subscriber with comma", func() error {
			return e.tr.Record(e.ctx, "c", []campaigns.Outcome{{Subscriber: "a,b", Result: campaigns.ResultSent}})
		}},
		{"Result subscriber with comma", func() error {
			_, err := e.tr.Result(e.ctx, "c", "a,b")
			return err
		}},
		{"Withdraw subscriber with comma", func() error { return e.tr.Withdraw(e.ctx, "a,b", nil) }},
		{"Withdraw list with comma", func() error { return e.tr.Withdraw(e.ctx, "a", []string{"news,deals"}) }},
		{"Withdraw empty list", func() error { return e.tr.Withdraw(e.ctx, "a", []string{""}) }},
		{"Restore subscriber with comma", func() error { return e.tr.Restore(e.ctx, "a,b", nil) }},
		{"Restore list with comma", func() error { return e.tr.Restore(e.ctx, "a", []string{"news,deals"}) }},
	} {
		if err := tc.call(); err == nil {
			t.Errorf("%s: got no error, want one", tc.name)
		}
	}
	// Nothing was written by the refused calls.
	if n, err := e.client.Exists(e.ctx, e.prefix+"{cm}:r:c", e.prefix+"{cm}:ws", e.prefix+"{cm}:wd").Result(); err != nil || n != 0 {
		t.Fatalf("keys written by refused calls: %d, %v, want 0", n, err)
	}
	e.wantCounts(t, "c", campaigns.Counts{})
}

// testTrackerManyRecipients claims and records more fields than one Lua unpack takes.
func testTrackerManyRecipients(t *testing.T, e *trackerEnv) {
	e.publish(t, "c", campaigns.StatusRunning)
	const n = 5000
	rs := make([]preferences.Recipient, n)
	outcomes := make([]campaigns.Outcome, n)
	for i := range rs {
		rs[i] = rcpt("s"+strconv.Itoa(i), "news")
		outcomes[i] = campaigns.Outcome{Subscriber: rs[i].ID, Result: campaigns.ResultSent}
	}
	if err := e.tr.Withdraw(e.ctx, "s4999", []string{"news"}); err != nil {
		t.Fatal(err)
	}
	vs := e.claim(t, "c", e.clock.Now().Add(time.Minute), rs...)
	for i, v := range vs {
		want := campaigns.Send
		if i == n-1 {
			want = campaigns.Skip
		}
		if v != want {
			t.Fatalf("verdict %d: got %v, want %v", i, v, want)
		}
	}
	e.record(t, "c", outcomes[:n-1]...)
	e.wantCounts(t, "c", campaigns.Counts{Sent: n - 1, Skipped: 1})
}

// BenchmarkRedisTrackerClaimRecord measures one job's work on the tracker: a Claim of
// 100 recipients, then a Record of their 100 results, on a local redis-server.
func BenchmarkRedisTrackerClaimRecord(b *testing.B) {
	const job = 100
	addr := queuetest.Redis(b)
	run := func(b *testing.B, e *trackerEnv, worker int64, ops func() bool) {
		rs := make([]preferences.Recipient, job)
		outcomes := make([]campaigns.Outcome, job)
		until := e.clock.Now().Add(time.Hour)
		for n := 0; ops(); n++ {
			for i := range rs {
				id := fmt.Sprintf("w%d-j%d-r%d", worker, n, i)
				rs[i] = preferences.Recipient{ID: id, Lists: []string{"news", "deals"}}
				outcomes[i] = campaigns.Outcome{Subscriber: id, Result: campaigns.ResultSent}
			}
			// b.Error, not b.Fatal: run also serves RunParallel's goroutines.
			vs, err := e.tr.Claim(e.ctx, "c", rs, until)
			if err != nil || len(vs) != job || vs[0] != campaigns.Send {
				b.Errorf("Claim: %v, %v", vs, err)
				return
			}
			if err := e.tr.Record(e.ctx, "c", outcomes); err != nil {
				b.Error(err)
				return
			}
		}
	}
	b.Run("serial", func(b *testing.B) {
		e := newTrackerEnv(b, addr)
		e.publish(b, "c", campaigns.StatusRunning)
		b.ReportAllocs()
		run(b, e, 0, b.Loop)
		b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*job), "ns/recipient")
	})
	b.Run("parallel", func(b *testing.B) {
		e := newTrackerEnv(b, addr)
		e.publish(b, "c", campaigns.StatusRunning)
		var workers atomic.Int64
		b.ReportAllocs()
		b.ResetTimer()
		b.RunParallel(func(pb *testing.PB) { run(b, e, workers.Add(1), pb.Next) })
		b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*job), "ns/recipient")
	})
}
