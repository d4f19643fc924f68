package main

import (
	"fmt"
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"consentmail/mailer/smtptest"
	"consentmail/preferences"
	"consentmail/preferences/linktoken"
	"consentmail/queue"
	"consentmail/queue/campaigns"
	"consentmail/queue/queuetest"
)

// withdrawal is one way a person takes their consent back, done over HTTP as they (or
// the DPO) would; it returns once the answer has arrived.
type withdrawal struct {
	name string
	do   func(c *client, signer *linktoken.Signer, sub string) int
}

var withdrawals = []withdrawal{
	{"one-click", func(c *client, s *linktoken.Signer, sub string) int {
		st, _ := c.do("POST", "/u/"+linktoken.Unsubscribe(s, sub, []string{"weekly"}, "", time.Now()),
			"application/x-www-form-urlencoded", "List-Unsubscribe=One-Click")
		return st
	}},
	{"link", func(c *client, s *linktoken.Signer, sub string) int {
		st, _ := c.do("POST", "/u/"+linktoken.Unsubscribe(s, sub, []string{"weekly"}, "", time.Now()),
			"application/x-www-form-urlencoded", "")
		return st
	}},
	{"preference centre", func(c *client, s *linktoken.Signer, sub string) int {
		page := "/p/" + linktoken.Preferences(s, sub, time.Now())
		st, body := c.do("GET", page, "", "")
		m := formTokenField.FindStringSubmatch(body)
		if st != http.StatusOK || m == nil {
			c.tb.Errorf("preference centre page: %d, form token found %v", st, m != nil)
			return st
		}
		// Nothing ticked: every list unsubscribed.
		st, _ = c.do("POST", page, "application/x-www-form-urlencoded",
			"form_token="+url.QueryEscape(m[1])+"&name=Person&tracking=no")
		return st
	}},
	{"restriction", func(c *client, _ *linktoken.Signer, sub string) int {
		return c.admin("POST", "/api/v1/subscribers/"+sub+"/restrict", "", nil)
	}},
	{"erasure", func(c *client, _ *linktoken.Signer, sub string) int {
		return c.admin("DELETE", "/api/v1/subscribers/"+sub, "", nil)
	}},
}

var formTokenField = regexp.MustCompile(`name="form_token" value="([^"]+)"`)

// TestWithdrawalStopsLaterSends: a withdrawal that has answered stops every later send
// to that person (contract §4.5), whichever the queue and whichever the withdrawal. A
// campaign to 300 people goes through a relay that takes 20 ms a message on two
// connections; while it is under way, 20 people who have not been sent it yet
// withdraw at once (five ways, four each). Every message the relay got for one of them
// must have reached it (MAIL FROM) before their withdrawal answered, and
// stats.skipped counts those never sent to (an erased person may instead leave the
// queue before any claim).
func TestWithdrawalStopsLaterSends(t *testing.T) {
	for _, mode := range []string{"embedded", "redis"} {
		t.Run(mode, func(t *testing.T) {
			const n, leaving = 300, 20
			sink := slowSink(t, 20*time.Millisecond)
			relay := sink.URL() + "&max_conns=2"
			dir := t.TempDir()
			audience := seedAudience(t, dir, "weekly", "stop", n)
			var base string
			switch mode {
			case "embedded":
				base = startChildArgs(t, serveEnv(dir, relay), "serve").Base
			case "redis":
				redisAddr := queuetest.Redis(t)
				base = startChildArgs(t, redisEnv(serveEnv(dir, smtptest.New(t).URL()), redisAddr), "serve", "--role", "api").Base
				env := redisEnv(serveEnv(t.TempDir(), relay), redisAddr)
				env["CONSENTMAIL_BASE_URL"] = base
				startChildArgs(t, env, "worker")
			}
			c := newClient(t, base)
			signer := linktoken.NewSigner(preferences.DeriveKey([]byte(testSecret), "unsubscribe-links"))

			id := c.startCampaign("weekly", "Spring news")
			sink.WaitFor(t, 30, 20*time.Second)
			got := map[string]bool{}
			for _, m := range sink.Messages() {
				got[m.To[0]] = true
			}
			var leavers []string
			for addr := range audience {
				if !got[addr] && len(leavers) < leaving {
					leavers = append(leavers, addr)
				}
			}
			answered := make(map[string]time.Time, leaving)
			how := make(map[string]string, leaving)
			var mu sync.Mutex
			var wg sync.WaitGroup
			for i, addr := range leavers {
				w := withdrawals[i%len(withdrawals)]
				wg.Add(1)
				go func() {
					defer wg.Done()
					if st := w.do(c, signer, audience[addr]); st != http.StatusOK && st != http.StatusNoContent {
						t.Errorf("%s of %s: status %d", w.name, addr, st)
					}
					mu.Lock()
					answered[addr], how[addr] = time.Now(), w.name
					mu.Unlock()
				}()
			}
			wg.Wait()
			if got := sink.Received(); got >= n-leaving {
				t.Fatalf("the campaign was nearly over (%d sent) when the withdrawals answered: make the relay slower", got)
			}
			final := c.waitFinished(id)

			late, sentTo, erased := 0, map[string]bool{}, 0
			for _, m := range sink.Messages() {
				addr := m.To[0]
				at, left := answered[addr]
				if !left {
					continue
				}
				sentTo[addr] = true
				if m.MailAt.After(at) {
					late++
					t.Errorf("%s (%s) was sent the campaign %v after their withdrawal answered",
						addr, how[addr], m.MailAt.Sub(at))
				}
			}
			never := 0
			for _, addr := range leavers {
				if !sentTo[addr] {
					never++
					if how[addr] == "erasure" {
						erased++
					}
				}
			}
			s := final.Stats
			t.Logf("%d of %d leavers were sent the campaign before their withdrawal answered, %d never; stats %+v",
				len(sentTo), leaving, never, s)
			if s.Sent != int64(n-never) {
				t.Errorf("stats.sent = %d, want %d (everyone but the %d never sent to)", s.Sent, n-never, never)
			}
			if s.Skipped > int64(never) || s.Skipped < int64(never-erased) {
				t.Errorf("stats.skipped = %d, want the %d leavers never sent to (less up to %d erased ones dropped from the queue)",
					s.Skipped, never, erased)
			}
			// Everyone else got it exactly once.
			count := map[string]int{}
			for _, m := range sink.Messages() {
				count[m.To[0]]++
			}
			var wrong []string
			for addr := range audience {
				if k := count[addr]; k > 1 || k == 0 && !slices.Contains(leavers, addr) {
					wrong = append(wrong, fmt.Sprintf("%s: %d", addr, k))
				}
			}
			if len(wrong) > 0 {
				t.Errorf("messages per person off: %s", strings.Join(wrong[:min(len(wrong), 5)], ", "))
			}
		})
	}
}

// TestCampaignTakenOverWithinSecondsOfKill: with the Redis queue and its default
// one-minute visibility timeout, a worker killed with SIGKILL mid-campaign holds its
// jobs and claims only until its heartbeat expires: a worker started after it finishes
// the campaign within seconds, nobody is missed, and at most two send groups per
// connection go twice.
func TestCampaignTakenOverWithinSecondsOfKill(t *testing.T) {
	const n = 600
	redisAddr := queuetest.Redis(t)
	rdb := redis.NewClient(&redis.Options{Addr: redisAddr})
	t.Cleanup(func() { rdb.Close() })
	sink := slowSink(t, 3*time.Millisecond)
	dir := t.TempDir()
	audience := seedAudience(t, dir, "weekly", "takeover", n)
	slow := func(env map[string]string) map[string]string {
		env["CONSENTMAIL_QUEUE_VISIBILITY"] = "1m"
		return env
	}
	api := startChildArgs(t, slow(redisEnv(serveEnv(dir, smtptest.New(t).URL()), redisAddr)), "serve", "--role", "api")
	c := newClient(t, api.Base)
	wenv, _ := workerEnv(t, redisAddr, api.Base, sink)
	first := startChildArgs(t, slow(wenv), "worker")
	id := c.startCampaign("weekly", "Spring news")
	killed := killMidCampaign(t, sink, first, n)
	recorded := recordedSends(t, campaigns.NewRedisTracker(rdb, campaigns.RedisTrackerOptions{Prefix: redisPrefix}), id, audience)

	startChildArgs(t, slow(wenv), "worker")
	final := c.waitFinished(id) // within 20 s, a third of the visibility timeout
	t.Logf("finished %v after the kill", time.Since(killed).Round(time.Millisecond))
	wantFinished(t, c, final, audience, sink)
	wantOnlyUnrecordedResent(t, sink, recorded, killed)
}

// TestWorkerStopsWhileRedisDown: a worker that loses Redis in the middle of a
// campaign still stops within a bounded time on SIGTERM (its deliveries in hand get
// queue.HandlerGrace); once Redis is back, another worker finishes the campaign: no
// one is missed, and at most two send groups per connection go twice.
func TestWorkerStopsWhileRedisDown(t *testing.T) {
	const n = 600
	redisAddr := queuetest.Redis(t)
	proxy := queuetest.NewProxy(t, redisAddr)
	rdb := redis.NewClient(&redis.Options{Addr: redisAddr})
	t.Cleanup(func() { rdb.Close() })
	sink := slowSink(t, 3*time.Millisecond)
	dir := t.TempDir()
	audience := seedAudience(t, dir, "weekly", "outage", n)
	api := startChildArgs(t, redisEnv(serveEnv(dir, smtptest.New(t).URL()), redisAddr), "serve", "--role", "api")
	c := newClient(t, api.Base)
	wenv, _ := workerEnv(t, proxy.Addr, api.Base, sink)
	first := startChildArgs(t, wenv, "worker")
	id := c.startCampaign("weekly", "Spring news")

	sink.WaitFor(t, n/4, 20*time.Second)
	proxy.Cut()
	cut := time.Now()
	// The worker has noticed: a claim or a record failed.
	exited := make(chan error)
	go func() { <-first.exited; close(exited) }()
	first.out.waitFor(t, regexp.MustCompile(`(recording campaign results failed|settling message failed|acknowledging messages failed)()`), exited)
	recorded := recordedSends(t, campaigns.NewRedisTracker(rdb, campaigns.RedisTrackerOptions{Prefix: redisPrefix}), id, audience)
	if err := first.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	termed := time.Now()
	bound := queue.HandlerGrace + 5*time.Second
	select {
	case <-first.exited:
		t.Logf("the worker stopped %v after SIGTERM, Redis down", time.Since(termed).Round(time.Millisecond))
	case <-time.After(bound):
		t.Fatalf("the worker did not stop within %v of SIGTERM while Redis was down", bound)
	}
	if got := sink.Received(); got >= n {
		t.Fatalf("all %d messages were sent before the outage: make the sink slower", got)
	}

	proxy.Restore()
	startChildArgs(t, wenv, "worker")
	wantFinished(t, c, c.waitFinished(id), audience, sink)
	wantOnlyUnrecordedResent(t, sink, recorded, cut)
}
