package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/emersion/go-smtp"
	"github.com/redis/go-redis/v9"
	"go.etcd.io/bbolt"

	"consentmail/mailer"
	"consentmail/mailer/smtptest"
	"consentmail/preferences"
	"consentmail/queue/campaigns"
	"consentmail/queue/queuetest"
)

// These tests run the campaign path across real processes: a server or API process
// and worker processes (the test binary re-executed, see TestMain), killed with
// SIGKILL in the middle of a campaign, against go-smtp sinks and a private Redis.

// maxInFlight is how many campaign messages a process relaying to relayURL handles at
// once: its consumer runs 2 × max_conns handlers.
const maxInFlight = 8

// child is a consentmail process.
type child struct {
	cmd    *exec.Cmd
	out    *lockedBuffer
	exited chan struct{}
	// Base is the public base URL a server prints ("" for a worker).
	Base string
}

// childReady matches what a server or a worker prints once it is ready.
var childReady = regexp.MustCompile(`consentmail (?:listening on \S+ \(public base URL (http://[^\s)]+)|worker consuming the Redis queue)`)

// startChildArgs runs `consentmail args...` as a separate process with env added to
// this process's environment, and waits until it says it is ready. The process is
// killed at the end of the test; its output is logged if the test failed.
func startChildArgs(tb testing.TB, env map[string]string, args ...string) *child {
	tb.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), childEnv+"="+strings.Join(args, " "))
	for k, v := range env {
		cmd.Env = append(cmd.Env, k+"="+v)
	}
	c := &child{cmd: cmd, out: newLockedBuffer(), exited: make(chan struct{})}
	cmd.Stdout, cmd.Stderr = c.out, c.out
	if err := cmd.Start(); err != nil {
		tb.Fatal(err)
	}
	done := make(chan error, 1)
	go func() {
		err := cmd.Wait()
		close(c.exited)
		done <- err
	}()
	tb.Cleanup(func() {
		c.kill()
		// The child is this test binary: built with -race, it reports races as they
		// happen, not at an exit it never reaches when killed.
		if strings.Contains(c.out.String(), "WARNING: DATA RACE") {
			tb.Errorf("consentmail %s had a data race", strings.Join(args, " "))
		}
		if tb.Failed() {
			tb.Logf("output of consentmail %s (pid %d):\n%s", strings.Join(args, " "), cmd.Process.Pid, c.out.String())
		}
	})
	c.Base = c.out.waitFor(tb, childReady, done)
	return c
}

// kill sends SIGKILL and returns once the process is gone, so that its data
// directory may be opened again.
func (c *child) kill() {
	c.cmd.Process.Signal(syscall.SIGKILL) // fails only when it has already exited
	<-c.exited
}

// seedAudience creates list and n confirmed subscribers on it, prefix-0000@example.org
// on, directly in the data directory dir (no server may hold it): far faster than
// signups and confirmations over HTTP. It returns the subscriber ids by address.
func seedAudience(tb testing.TB, dir, list, prefix string, n int) map[string]string {
	tb.Helper()
	ctx := context.Background()
	store, done := openTestStore(tb, dir)
	defer done()
	_, err := store.CreateList(ctx, preferences.List{ID: list, Name: "Weekly news", Purpose: "News about our shop, once a week.",
		ConsentText: "I want the weekly news by email.", Public: true})
	if err != nil {
		tb.Fatal(err)
	}
	ids := make([]string, n)
	var next atomic.Int64
	var wg sync.WaitGroup
	var mu sync.Mutex
	var firstErr error
	for range 32 { // the store group-commits concurrent writers
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := int(next.Add(1) - 1); i < n; i = int(next.Add(1) - 1) {
				addr := fmt.Sprintf("%s-%04d@example.org", prefix, i)
				var req preferences.OptinRequest
				err := store.Signup(ctx, preferences.SignupInput{Email: addr, IndexKey: addr, Name: "Person " + strconv.Itoa(i),
					Locale: "en", Lists: []string{list}, Source: "test", IP: "192.0.2.1", UserAgent: "seed"},
					func(_ *bbolt.Tx, r preferences.OptinRequest) error { req = r; return nil })
				if err == nil {
					_, err = store.Confirm(ctx, preferences.ConfirmInput{Subscriber: req.Subscriber, Lists: req.Lists, Nonce: req.Nonce})
				}
				if err != nil {
					mu.Lock()
					if firstErr == nil {
						firstErr = fmt.Errorf("subscribe %s: %w", addr, err)
					}
					mu.Unlock()
					return
				}
				ids[i] = req.Subscriber
			}
		}()
	}
	wg.Wait()
	if firstErr != nil {
		tb.Fatal(firstErr)
	}
	out := make(map[string]string, n)
	for i, id := range ids {
		out[fmt.Sprintf("%s-%04d@example.org", prefix, i)] = id
	}
	return out
}

// slowSink is a sink that takes perRcpt to answer each RCPT: campaigns to it last long
// enough for a process to be killed in their middle.
func slowSink(tb testing.TB, perRcpt time.Duration) *smtptest.Sink {
	tb.Helper()
	s := smtptest.New(tb)
	s.FailRcpt(func(string) *smtp.SMTPError {
		time.Sleep(perRcpt)
		return nil
	})
	return s
}

// relayURL is s as a relay with 4 connections, so that a process sending to it runs
// maxInFlight concurrent campaign handlers.
func relayURL(s *smtptest.Sink) string { return s.URL() + "&max_conns=4" }

// campaignView is what GET /api/v1/campaigns/{id} shows.
type campaignView struct {
	ID     string `json:"id"`
	Status string `json:"status"`
	Stats  struct {
		Audience     int64 `json:"audience"`
		Queued       int64 `json:"queued"`
		Sent         int64 `json:"sent"`
		Failed       int64 `json:"failed"`
		Skipped      int64 `json:"skipped"`
		Unsubscribed int64 `json:"unsubscribed"`
	} `json:"stats"`
}

// startCampaign creates a campaign to list and starts it; it returns its id.
func (c *client) startCampaign(list, subject string) string {
	c.tb.Helper()
	var created campaignView
	body := fmt.Sprintf(`{"name":%q,"subject":%q,"lists":[%q],"html":"<p>Hello {{.Subscriber.Name}}, here is the news.</p>","track":false}`,
		subject, subject, list)
	if st := c.admin("POST", "/api/v1/campaigns", body, &created); st != http.StatusCreated || created.ID == "" || created.Status != "draft" {
		c.tb.Fatalf("create campaign: %d %+v, want 201 with an id and status draft", st, created)
	}
	var started campaignView
	if st := c.admin("POST", "/api/v1/campaigns/"+created.ID+"/start", "", &started); st != http.StatusOK || started.Status != "running" {
		c.tb.Fatalf("start campaign: %d %+v, want 200 running", st, started)
	}
	return created.ID
}

func (c *client) campaign(id string) campaignView {
	c.tb.Helper()
	var v campaignView
	if st := c.admin("GET", "/api/v1/campaigns/"+id, "", &v); st != http.StatusOK {
		c.tb.Fatalf("get campaign %s: status %d", id, st)
	}
	return v
}

// waitFinished waits until the campaign is finished and returns it as it is then.
func (c *client) waitFinished(id string) campaignView {
	c.tb.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		v := c.campaign(id)
		if v.Status == "finished" {
			return v
		}
		if time.Now().After(deadline) {
			c.tb.Fatalf("campaign not finished within 20s: status %s, stats %+v", v.Status, v.Stats)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// wantFinished checks a campaign that said it is finished: its counters (everyone in
// audience queued and sent once, nothing failed or skipped), then the sinks: everyone
// in audience received it and nobody else did. It returns the number of messages
// beyond the first per person (duplicates).
func wantFinished(tb testing.TB, c *client, final campaignView, audience map[string]string, sinks ...*smtptest.Sink) (duplicates int) {
	tb.Helper()
	n := int64(len(audience))
	if s := final.Stats; s.Audience != n || s.Queued != n || s.Sent != n || s.Failed != 0 || s.Skipped != 0 {
		tb.Errorf("finished campaign stats %+v, want audience, queued and sent %d, nothing failed or skipped", s, n)
		if s.Sent < n {
			// Tell a campaign marked finished too early from one that lost mail.
			deadline := time.Now().Add(5 * time.Second)
			v := final
			for v.Stats.Sent < n && time.Now().Before(deadline) {
				time.Sleep(10 * time.Millisecond)
				v = c.campaign(final.ID)
			}
			tb.Logf("after the campaign said finished with %d sent: %d sent, status %s", s.Sent, v.Stats.Sent, v.Status)
		}
	}
	got := map[string]int{}
	for _, s := range sinks {
		if s.Received() > smtptest.Keep {
			tb.Fatalf("sink received %d messages and keeps %d: raise smtptest.Keep", s.Received(), smtptest.Keep)
		}
		for _, m := range s.Messages() {
			if len(m.To) != 1 {
				tb.Fatalf("message %s to %v, want one recipient", m.ID, m.To)
			}
			if _, ok := audience[m.To[0]]; !ok {
				tb.Fatalf("message to %s, who is not in the audience", m.To[0])
			}
			got[m.To[0]]++
		}
	}
	missing := 0
	for addr := range audience {
		switch k := got[addr]; {
		case k == 0:
			if missing++; missing <= 5 {
				tb.Errorf("%s received nothing", addr)
			}
		default:
			duplicates += k - 1
		}
	}
	if missing > 0 {
		tb.Errorf("%d of %d subscribers received nothing", missing, len(audience))
	}
	return duplicates
}

// recordedSends returns the members of audience whose message tracker holds as sent:
// read after a kill, what the killed process had durably recorded.
func recordedSends(tb testing.TB, tracker campaigns.Tracker, campaign string, audience map[string]string) map[string]bool {
	tb.Helper()
	out := map[string]bool{}
	for addr, sub := range audience {
		r, err := tracker.Result(context.Background(), campaign, sub)
		if err != nil {
			tb.Fatal(err)
		}
		if r == campaigns.ResultSent {
			out[addr] = true
		}
	}
	return out
}

// recordedSendsBolt is recordedSends for a server on the embedded queue, whose data
// directory dir no process holds.
func recordedSendsBolt(tb testing.TB, dir, campaign string, audience map[string]string) map[string]bool {
	tb.Helper()
	db, err := openDB(dir, "")
	if err != nil {
		tb.Fatal(err)
	}
	defer db.Close()
	tracker, err := campaigns.NewBoltTracker(db, nil, nil, nil, time.Now) // read only
	if err != nil {
		tb.Fatal(err)
	}
	return recordedSends(tb, tracker, campaign, audience)
}

// maxResent is the most messages a crash may make go twice (README, Guarantees): two
// send groups (10 each) per relay connection (relayURL's 4) of the process that died.
const maxResent = 2 * 4 * 10

// wantOnlyUnrecordedResent checks what the contract allows after a crash: a message
// goes twice only if the relay had accepted it and its result was not yet durable
// (recorded: the sends recorded at the kill), and no more than maxResent do.
func wantOnlyUnrecordedResent(tb testing.TB, sink *smtptest.Sink, recorded map[string]bool, killed time.Time) {
	tb.Helper()
	seen := map[string]time.Time{}
	dups, wrong, oldest := 0, 0, time.Duration(0)
	msgs := sink.Messages()
	for i := len(msgs) - 1; i >= 0; i-- { // oldest first
		addr := msgs[i].To[0]
		first, again := seen[addr]
		if !again {
			seen[addr] = msgs[i].Received
			continue
		}
		dups++
		oldest = max(oldest, killed.Sub(first))
		if recorded[addr] {
			if wrong++; wrong <= 5 {
				tb.Errorf("%s was sent again although its first message was recorded as sent before the kill", addr)
			}
		}
	}
	if wrong > 0 {
		tb.Errorf("%d messages recorded as sent before the kill were sent again", wrong)
	}
	if dups > maxResent {
		tb.Errorf("%d messages sent twice, want at most %d (two send groups per connection)", dups, maxResent)
	}
	tb.Logf("%d messages sent twice, none recorded at the kill (%d were; the process ran %d concurrent sends); their first copies arrived at most %v before the kill",
		dups, len(recorded), maxInFlight, oldest)
}

// killMidCampaign waits until the sink has received a quarter of n messages, kills p
// and checks that the campaign was then still under way.
func killMidCampaign(tb testing.TB, sink *smtptest.Sink, p *child, n int) (killed time.Time) {
	tb.Helper()
	sink.WaitFor(tb, n/4, 20*time.Second)
	p.kill()
	killed = time.Now()
	if got := sink.Received(); got >= n {
		tb.Fatalf("all %d messages were sent before the kill: make the sink slower", got)
	} else {
		tb.Logf("killed the sender after %d of %d messages", got, n)
	}
	return killed
}

// TestCampaignSurvivesKill9Embedded: a server on the embedded queue killed with
// SIGKILL in the middle of a campaign, and started again on the same data directory,
// finishes it: everyone receives the campaign, only messages whose result was not yet
// durable at the kill go twice, and the counters are exact.
func TestCampaignSurvivesKill9Embedded(t *testing.T) {
	const n = 600
	sink := slowSink(t, 3*time.Millisecond)
	dir := t.TempDir()
	audience := seedAudience(t, dir, "weekly", "kill", n)
	env := serveEnv(dir, relayURL(sink))

	first := startChildArgs(t, env, "serve")
	id := newClient(t, first.Base).startCampaign("weekly", "Spring news")
	killed := killMidCampaign(t, sink, first, n)
	recorded := recordedSendsBolt(t, dir, id, audience)

	second := startChildArgs(t, env, "serve")
	c := newClient(t, second.Base)
	wantFinished(t, c, c.waitFinished(id), audience, sink)
	wantOnlyUnrecordedResent(t, sink, recorded, killed)
}

// redisEnv adds the Redis queue at addr to env, with a short visibility timeout so
// that the jobs of a killed worker are taken over within seconds.
func redisEnv(env map[string]string, addr string) map[string]string {
	env["CONSENTMAIL_REDIS_URL"] = "redis://" + addr + "/0"
	env["CONSENTMAIL_QUEUE_VISIBILITY"] = "2s"
	return env
}

// workerEnv is the configuration of a worker process relaying to sink: the API's base
// URL (for the links in mail) and a data directory that must never be created.
func workerEnv(tb testing.TB, redisAddr, base string, sink *smtptest.Sink) (env map[string]string, dataDir string) {
	dataDir = filepath.Join(tb.TempDir(), "never-opened")
	env = redisEnv(serveEnv(dataDir, relayURL(sink)), redisAddr)
	env["CONSENTMAIL_BASE_URL"] = base
	return env, dataDir
}

// wantNoDataDir checks that a worker never opened (or created) its data directory.
func wantNoDataDir(tb testing.TB, dir string) {
	tb.Helper()
	if _, err := os.Stat(dir); !os.IsNotExist(err) {
		tb.Errorf("a worker created its data directory %s (stat: %v)", dir, err)
	}
}

// TestCampaignSurvivesKill9RedisWorker: with the Redis queue, a worker process killed
// with SIGKILL in the middle of a campaign loses nothing: another worker finishes the
// campaign, only messages whose result was not yet recorded at the kill go twice, the
// counters are exact, the API process sends no campaign mail and no worker opens a
// data directory.
func TestCampaignSurvivesKill9RedisWorker(t *testing.T) {
	const n = 600
	redisAddr := queuetest.Redis(t)
	rdb := redis.NewClient(&redis.Options{Addr: redisAddr})
	t.Cleanup(func() { rdb.Close() })
	sink := slowSink(t, 3*time.Millisecond)
	apiSink := smtptest.New(t)
	dir := t.TempDir()
	audience := seedAudience(t, dir, "weekly", "redis-kill", n)

	api := startChildArgs(t, redisEnv(serveEnv(dir, apiSink.URL()), redisAddr), "serve", "--role", "api")
	c := newClient(t, api.Base)
	wenv, wdir := workerEnv(t, redisAddr, api.Base, sink)
	first := startChildArgs(t, wenv, "worker")
	id := c.startCampaign("weekly", "Spring news")
	killed := killMidCampaign(t, sink, first, n)
	recorded := recordedSends(t, campaigns.NewRedisTracker(rdb, campaigns.RedisTrackerOptions{Prefix: redisPrefix}), id, audience)

	startChildArgs(t, wenv, "worker")
	wantFinished(t, c, c.waitFinished(id), audience, sink)
	wantOnlyUnrecordedResent(t, sink, recorded, killed)
	if got := apiSink.Received(); got != 0 {
		t.Errorf("the API process sent %d messages, want none (it never consumes campaign jobs)", got)
	}
	wantNoDataDir(t, wdir)
}

// TestCampaignTwoWorkerProcesses: two worker processes share a campaign; each person
// gets exactly one message, from one of them, and both do part of the work.
func TestCampaignTwoWorkerProcesses(t *testing.T) {
	const n = 1000
	redisAddr := queuetest.Redis(t)
	sinks := []*smtptest.Sink{slowSink(t, 2*time.Millisecond), slowSink(t, 2*time.Millisecond)}
	apiSink := smtptest.New(t)
	dir := t.TempDir()
	audience := seedAudience(t, dir, "weekly", "two", n)

	api := startChildArgs(t, redisEnv(serveEnv(dir, apiSink.URL()), redisAddr), "serve", "--role", "api")
	c := newClient(t, api.Base)
	var wdirs []string
	for _, s := range sinks {
		env, wdir := workerEnv(t, redisAddr, api.Base, s)
		startChildArgs(t, env, "worker")
		wdirs = append(wdirs, wdir)
	}
	id := c.startCampaign("weekly", "Spring news")
	if dups := wantFinished(t, c, c.waitFinished(id), audience, sinks...); dups != 0 {
		t.Errorf("%d duplicate messages without any crash, want 0", dups)
	}
	for i, s := range sinks {
		t.Logf("worker %d sent %d messages", i+1, s.Received())
		if s.Received() == 0 {
			t.Errorf("worker %d sent nothing, want both workers to share the campaign", i+1)
		}
	}
	if got := apiSink.Received(); got != 0 {
		t.Errorf("the API process sent %d messages, want none", got)
	}
	for _, d := range wdirs {
		wantNoDataDir(t, d)
	}
}

var unsubscribeHeader = regexp.MustCompile(`<(https?://[^>]+)>`)

// TestCampaignOneClickUnsubscribeEndToEnd: the RFC 8058 one-click POST to a campaign
// message's List-Unsubscribe link unsubscribes at once, is logged as one_click with the
// campaign, counts in the campaign's stats and keeps the next campaign from the person.
func TestCampaignOneClickUnsubscribeEndToEnd(t *testing.T) {
	sink := smtptest.New(t)
	dir := t.TempDir()
	audience := seedAudience(t, dir, "weekly", "oneclick", 3)
	srv := startServer(t, serveEnv(dir, sink.URL()), "serve")
	c := newClient(t, srv.BaseURL)

	id := c.startCampaign("weekly", "Spring news")
	if dups := wantFinished(t, c, c.waitFinished(id), audience, sink); dups != 0 {
		t.Fatalf("%d duplicate messages, want 0", dups)
	}
	const leaver = "oneclick-0001@example.org"
	var lu string
	for _, m := range sink.Messages() {
		if m.To[0] != leaver {
			continue
		}
		if got := m.Header.Get("List-Unsubscribe-Post"); got != "List-Unsubscribe=One-Click" {
			t.Errorf("List-Unsubscribe-Post %q, want List-Unsubscribe=One-Click", got)
		}
		h := unsubscribeHeader.FindStringSubmatch(m.Header.Get("List-Unsubscribe"))
		if h == nil || !strings.HasPrefix(h[1], srv.BaseURL+"/u/") {
			t.Fatalf("List-Unsubscribe %q, want <%s/u/TOKEN>", m.Header.Get("List-Unsubscribe"), srv.BaseURL)
		}
		lu = h[1]
	}
	if lu == "" {
		t.Fatalf("no campaign message to %s", leaver)
	}

	// What a mail client sends (RFC 8058 §3.2): no cookie, no redirect followed.
	req, err := http.NewRequest("POST", lu, strings.NewReader("List-Unsubscribe=One-Click"))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	res, err := c.http.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != http.StatusOK || res.Header.Get("Location") != "" || len(res.Header.Values("Set-Cookie")) > 0 {
		t.Fatalf("one-click POST: %d, Location %q, Set-Cookie %q; want 200, no redirect, no cookie",
			res.StatusCode, res.Header.Get("Location"), res.Header.Values("Set-Cookie"))
	}

	events := c.ledger("type=unsubscribed")
	if len(events) != 1 {
		t.Fatalf("%d unsubscribed events, want 1: %+v", len(events), events)
	}
	if e := events[0]; e.Subscriber != audience[leaver] || e.Details["method"] != "one_click" || e.Details["campaign"] != id ||
		strings.Join(e.Lists, ",") != "weekly" {
		t.Errorf("unsubscribed event %+v, want subscriber %s, lists [weekly], method one_click, campaign %s", e, audience[leaver], id)
	}
	if got := c.campaign(id).Stats.Unsubscribed; got != 1 {
		t.Errorf("campaign stats.unsubscribed = %d, want 1", got)
	}

	const second = "Summer news"
	next := c.startCampaign("weekly", second)
	final := c.waitFinished(next)
	for _, m := range sink.Messages() {
		if m.Subject == second && m.To[0] == leaver {
			t.Errorf("%s unsubscribed and still received %q", leaver, second)
		}
	}
	if s := final.Stats; s.Audience != 2 || s.Sent != 2 {
		t.Errorf("second campaign stats %+v, want audience and sent 2 (the unsubscribed person left out)", s)
	}
}

// TestWorkerRefusesWithoutRedis: the roles that split the service need the Redis
// queue; without it they stop at once with a message naming the variable, before
// touching the data directory.
func TestWorkerRefusesWithoutRedis(t *testing.T) {
	for _, args := range [][]string{{"worker"}, {"serve", "--role", "api"}, {"serve", "--role", "worker"}} {
		t.Run(strings.Join(args, " "), func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "data")
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			err := run(ctx, append([]string{"consentmail"}, args...), environ(serveEnv(dir, "smtp://"+closedPort(t)+"?tls=none")),
				io.Discard, io.Discard)
			if err == nil || !strings.Contains(err.Error(), "CONSENTMAIL_REDIS_URL") {
				t.Fatalf("got %v, want an error naming CONSENTMAIL_REDIS_URL", err)
			}
			if _, err := os.Stat(dir); !os.IsNotExist(err) {
				t.Errorf("the data directory was created (stat: %v)", err)
			}
		})
	}
}

// A worker signs links to the API: without CONSENTMAIL_BASE_URL it would sign links to
// an address it never serves, so it refuses to start.
func TestWorkerRefusesWithoutBaseURL(t *testing.T) {
	env := serveEnv(filepath.Join(t.TempDir(), "data"), "smtp://"+closedPort(t)+"?tls=none")
	env["CONSENTMAIL_REDIS_URL"] = "redis://" + closedPort(t) + "/0"
	delete(env, "CONSENTMAIL_BASE_URL")
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	err := run(ctx, []string{"consentmail", "worker"}, environ(env), io.Discard, io.Discard)
	if err == nil || !strings.Contains(err.Error(), "CONSENTMAIL_BASE_URL") {
		t.Fatalf("got %v, want an error naming CONSENTMAIL_BASE_URL", err)
	}
}

// openTestStore opens the consent book of data directory dir (no server may hold it)
// with the tests' secret; done closes it.
func openTestStore(tb testing.TB, dir string) (store *preferences.Store, done func()) {
	tb.Helper()
	db, err := openDB(dir, "")
	if err != nil {
		tb.Fatal(err)
	}
	if store, err = openStore(db, []byte(testSecret), time.Now); err != nil {
		db.Close()
		tb.Fatal(err)
	}
	return store, func() { store.Close(); db.Close() }
}

// A process handles two queue messages per relay connection, and never more than
// maxHandlers whatever max_conns says: what it holds (jobs, stacks, send groups on the
// wire, what a crash can make go twice) does not grow with the connections.
func TestHandlersBoundedWhateverTheConnections(t *testing.T) {
	for _, tc := range []struct {
		conns []int
		want  int
	}{
		{[]int{1}, 2}, {[]int{4}, 8}, {[]int{32}, 64}, {[]int{32, 32}, 128}, {[]int{300}, maxHandlers}, {[]int{1000, 4}, maxHandlers},
	} {
		s := &service{}
		for _, n := range tc.conns {
			s.relays = append(s.relays, mailer.Relay{Host: "relay.example", Port: 25, MaxConns: n})
		}
		if got := s.concurrency(); got != tc.want {
			t.Errorf("relays of %v connections: %d handlers, want %d", tc.conns, got, tc.want)
		}
	}
}
