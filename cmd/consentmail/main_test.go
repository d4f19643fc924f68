package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"go.etcd.io/bbolt"

	"consentmail/mailer/smtptest"
)

const (
	testSecret   = "test-secret-0123456789abcdef0123456789abcdef"
	testAdminKey = "cmk_test_admin_key_0123456789"
)

// lockedBuffer is an io.Writer safe for concurrent use that signals each write.
type lockedBuffer struct {
	mu      sync.Mutex
	buf     bytes.Buffer
	changed chan struct{}
}

func newLockedBuffer() *lockedBuffer { return &lockedBuffer{changed: make(chan struct{}, 1)} }

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	n, err := b.buf.Write(p)
	select {
	case b.changed <- struct{}{}:
	default:
	}
	return n, err
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// waitFor waits until the buffer matches re, and returns the first submatch.
func (b *lockedBuffer) waitFor(tb testing.TB, re *regexp.Regexp, done <-chan error) string {
	tb.Helper()
	deadline := time.After(20 * time.Second)
	for {
		if m := re.FindStringSubmatch(b.String()); m != nil {
			return m[len(m)-1]
		}
		select {
		case <-b.changed:
		case err := <-done:
			tb.Fatalf("server exited before %v: %v\noutput:\n%s", re, err, b.String())
		case <-deadline:
			tb.Fatalf("timed out waiting for %v in:\n%s", re, b.String())
		}
	}
}

// server is a consentmail started with run() in this process, or, for a benchmark
// given BENCH_SERVER_BIN, the binary it names in a child process (Pid set; tests keep
// the server in process).
type server struct {
	BaseURL string
	Stdout  *lockedBuffer
	Stderr  *lockedBuffer
	Pid     int
	stop    context.CancelFunc
	kill    func() // a child's SIGKILL (nil in process)
	done    chan error
	stopped bool
}

// startServer runs `consentmail <args>` with env until the test ends (or Stop).
func startServer(tb testing.TB, env map[string]string, args ...string) *server {
	tb.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	s := &server{Stdout: newLockedBuffer(), Stderr: newLockedBuffer(), stop: cancel, done: make(chan error, 1)}
	if _, bench := tb.(*testing.B); bench && os.Getenv("BENCH_SERVER_BIN") != "" {
		cmd := exec.Command(os.Getenv("BENCH_SERVER_BIN"), args...)
		if os.Getenv("BENCH_SERVER_BIN") == "floor" { // the overload benchmark's floor (serveFloor)
			cmd = exec.Command(os.Args[0], "-test.run=^$")
			cmd.Env = append(cmd.Env, floorEnv+"=1")
		}
		// The child sees what run() would: env, and none of the shell's CONSENTMAIL_*.
		for _, kv := range os.Environ() {
			if !strings.HasPrefix(kv, "CONSENTMAIL_") {
				cmd.Env = append(cmd.Env, kv)
			}
		}
		cmd.Env = append(cmd.Env, environ(env)...)
		if a := os.Getenv("BENCH_DEBUG_ADDR"); a != "" {
			cmd.Env = append(cmd.Env, "CONSENTMAIL_DEBUG_ADDR="+a) // its profiler, for go tool pprof
		}
		cmd.Stdout, cmd.Stderr = s.Stdout, s.Stderr
		if err := cmd.Start(); err != nil {
			tb.Fatalf("start %s: %v", cmd.Path, err)
		}
		s.Pid = cmd.Process.Pid
		s.stop = func() { _ = cmd.Process.Signal(syscall.SIGTERM) }
		s.kill = func() { _ = cmd.Process.Kill() }
		go func() { s.done <- cmd.Wait() }()
	} else {
		go func() { s.done <- run(ctx, append([]string{"consentmail"}, args...), environ(env), s.Stdout, s.Stderr) }()
	}
	tb.Cleanup(func() { s.Stop(tb) })
	s.BaseURL = s.Stdout.waitFor(tb, regexp.MustCompile(`(?:listening on \S+ \(public base URL|API and pages:)\s+(http://[^\s)]+)`), s.done)
	return s
}

// Stop shuts the server down gracefully and waits for it.
func (s *server) Stop(tb testing.TB) {
	tb.Helper()
	if s.stopped {
		return
	}
	s.stopped = true
	s.stop()
	select {
	case err := <-s.done:
		if err != nil {
			tb.Errorf("server returned %v\nstderr:\n%s", err, s.Stderr.String())
		}
	case <-time.After(20 * time.Second):
		tb.Errorf("server did not stop in 20s")
		if s.kill != nil { // a child process is not left behind
			s.kill()
			<-s.done
		}
	}
}

func environ(env map[string]string) []string {
	var out []string
	for k, v := range env {
		out = append(out, k+"="+v)
	}
	return out
}

// serveEnv is the configuration of a production-like server on free ports.
func serveEnv(dataDir, smtpURL string) map[string]string {
	return map[string]string{
		"CONSENTMAIL_DATA_DIR":      dataDir,
		"CONSENTMAIL_HTTP_ADDR":     "127.0.0.1:0",
		"CONSENTMAIL_SECRET":        testSecret,
		"CONSENTMAIL_SMTP_URL":      smtpURL,
		"CONSENTMAIL_ADMIN_API_KEY": testAdminKey,
		"CONSENTMAIL_SIGNUP_RATE":   "1000/s",
		"CONSENTMAIL_LOG_LEVEL":     "warn",
	}
}

type client struct {
	tb   testing.TB
	base string
	http *http.Client
}

func newClient(tb testing.TB, base string) *client {
	return &client{tb: tb, base: base, http: &http.Client{Timeout: 10 * time.Second,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}}
}

// do sends a request and returns the status and body.
func (c *client) do(method, path, contentType, body string, header ...string) (int, string) {
	c.tb.Helper()
	u := path
	if !strings.HasPrefix(path, "http") {
		u = c.base + path
	}
	req, err := http.NewRequest(method, u, strings.NewReader(body))
	if err != nil {
		c.tb.Fatal(err)
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	res, err := c.http.Do(req)
	if err != nil {
		c.tb.Fatalf("%s %s: %v", method, path, err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	return res.StatusCode, string(b)
}

// admin sends an authenticated JSON request and decodes the answer into out.
func (c *client) admin(method, path, body string, out any) int {
	c.tb.Helper()
	status, resp := c.do(method, path, "application/json", body, "Authorization", "Bearer "+testAdminKey)
	if out != nil {
		if err := json.Unmarshal([]byte(resp), out); err != nil {
			c.tb.Fatalf("%s %s: decode %q: %v", method, path, resp, err)
		}
	}
	return status
}

func (c *client) createList(id string) {
	c.tb.Helper()
	body := fmt.Sprintf(`{"id":%q,"name":"Weekly news","purpose":"News about our shop, once a week.","consent_text":"I want the weekly news by email.","public":true}`, id)
	if status := c.admin("POST", "/api/v1/lists", body, nil); status != http.StatusCreated {
		c.tb.Fatalf("create list: status %d, want 201", status)
	}
}

func (c *client) signup(email, list string) {
	c.tb.Helper()
	status, body := c.do("POST", "/api/v1/signups", "application/json",
		fmt.Sprintf(`{"email":%q,"name":"Test Person","lists":[%q],"consent":true}`, email, list),
		"User-Agent", "e2e-test/1.0")
	if status != http.StatusAccepted || body != `{"status":"pending"}` {
		c.tb.Fatalf("signup %s: got %d %s, want 202 {\"status\":\"pending\"}", email, status, body)
	}
}

type ledgerEvent struct {
	Seq        uint64            `json:"seq"`
	Type       string            `json:"type"`
	Subscriber string            `json:"subscriber"`
	Lists      []string          `json:"lists"`
	IP         string            `json:"ip"`
	UserAgent  string            `json:"user_agent"`
	Details    map[string]string `json:"details"`
	PrevHash   string            `json:"prev_hash"`
	Hash       string            `json:"hash"`
}

func (c *client) ledger(query string) []ledgerEvent {
	c.tb.Helper()
	var page struct {
		Items []ledgerEvent `json:"items"`
	}
	if status := c.admin("GET", "/api/v1/ledger?limit=1000&"+query, "", &page); status != http.StatusOK {
		c.tb.Fatalf("ledger: status %d", status)
	}
	return page.Items
}

var confirmLink = regexp.MustCompile(`https?://\S+/confirm/[A-Za-z0-9_\-.%]+`)

// confirmURL extracts the confirmation link from a mail's text part.
func confirmURL(tb testing.TB, text string) string {
	tb.Helper()
	u := confirmLink.FindString(text)
	if u == "" {
		tb.Fatalf("no confirmation link in mail:\n%s", text)
	}
	return u
}

func TestEndToEndDoubleOptin(t *testing.T) {
	sink := smtptest.New(t)
	dir := t.TempDir()
	env := serveEnv(dir, sink.URL())
	env["CONSENTMAIL_LOG_LEVEL"] = "debug" // the most the logs ever say: checked for secrets below
	srv := startServer(t, env, "serve")
	c := newClient(t, srv.BaseURL)
	c.createList("weekly")

	c.signup("Ana.Person@Example.ORG", "weekly")
	msgs := sink.WaitFor(t, 1, 10*time.Second)
	m := msgs[0]
	if len(m.To) != 1 || m.To[0] != "Ana.Person@example.org" {
		t.Fatalf("mail to %v, want [Ana.Person@example.org]", m.To)
	}
	if m.HTML == "" || m.Text == "" {
		t.Fatalf("mail parts: html %d bytes, text %d bytes; want both", len(m.HTML), len(m.Text))
	}
	link := confirmURL(t, m.Text)
	// confirmation_sent is written right after the relay's 250, so just after the mail.
	waitUntil(t, func() bool { return len(c.ledger("type=confirmation_sent")) == 1 })
	if !strings.HasPrefix(link, srv.BaseURL+"/confirm/") {
		t.Fatalf("link %s does not start with the base URL %s", link, srv.BaseURL)
	}

	// A scanner's GET shows the button and changes nothing.
	for i := 0; i < 3; i++ {
		status, page := c.do("GET", link, "", "")
		if status != http.StatusOK || !strings.Contains(page, `<form method="post"`) || !strings.Contains(page, "Weekly news") {
			t.Fatalf("GET confirm: got %d, want 200 with a POST form naming the list:\n%s", status, page)
		}
	}
	if got := c.ledger("type=confirmed"); len(got) != 0 {
		t.Fatalf("after GET: %d confirmed events, want 0", len(got))
	}

	status, page := c.do("POST", link, "application/x-www-form-urlencoded", "", "User-Agent", "browser-click/2.0")
	if status != http.StatusOK || !strings.Contains(page, "You are subscribed") {
		t.Fatalf("POST confirm: got %d, want 200 'You are subscribed':\n%s", status, page)
	}
	status, page = c.do("POST", link, "application/x-www-form-urlencoded", "")
	if status != http.StatusOK || !strings.Contains(page, "Already confirmed") {
		t.Fatalf("second POST confirm: got %d, want 200 'Already confirmed':\n%s", status, page)
	}

	events := c.ledger("")
	var types []string
	for _, e := range events {
		types = append(types, e.Type)
	}
	if want := "signup,confirmation_sent,confirmed"; strings.Join(types, ",") != want {
		t.Fatalf("ledger types %v, want %s", types, want)
	}
	signup, confirmed := events[0], events[2]
	if signup.IP != "127.0.0.1" || signup.UserAgent != "e2e-test/1.0" || signup.Details["consent_version.weekly"] == "" {
		t.Errorf("signup event %+v: want IP 127.0.0.1, UA e2e-test/1.0 and the consent version", signup)
	}
	if confirmed.UserAgent != "browser-click/2.0" || confirmed.IP != "127.0.0.1" || confirmed.Subscriber != signup.Subscriber {
		t.Errorf("confirmed event %+v: want the clicking browser's UA and IP, same subscriber", confirmed)
	}
	for i := 1; i < len(events); i++ {
		if events[i].PrevHash != events[i-1].Hash {
			t.Errorf("event %d prev_hash %s, want %s", events[i].Seq, events[i].PrevHash, events[i-1].Hash)
		}
	}
	var verify struct {
		OK     bool   `json:"ok"`
		Events int    `json:"events"`
		Head   string `json:"head"`
	}
	if status := c.admin("GET", "/api/v1/ledger/verify", "", &verify); status != 200 || !verify.OK || verify.Events != 3 || verify.Head != events[2].Hash {
		t.Fatalf("verify: %d %+v, want ok with 3 events and head %s", status, verify, events[2].Hash)
	}

	// The CLI verifies the same chain once the server has let go of the file.
	srv.Stop(t)
	logs := srv.Stdout.String() + srv.Stderr.String()
	token := link[strings.LastIndex(link, "/")+1:]
	for name, secret := range map[string]string{"root secret": testSecret, "API key": testAdminKey,
		"confirmation token": token, "token signature": token[strings.LastIndex(token, ".")+1:], "email": "Ana.Person"} {
		if strings.Contains(logs, secret) {
			t.Errorf("the logs contain the %s", name)
		}
	}
	var out bytes.Buffer
	if err := run(context.Background(), []string{"consentmail", "ledger", "verify"}, []string{"CONSENTMAIL_DATA_DIR=" + dir}, &out, io.Discard); err != nil {
		t.Fatalf("ledger verify: %v", err)
	}
	if !strings.Contains(out.String(), "ledger OK: 3 events, head "+verify.Head) {
		t.Fatalf("ledger verify printed %q", out.String())
	}
}

func TestHealthReadyMetricsAndAuth(t *testing.T) {
	sink := smtptest.New(t)
	srv := startServer(t, serveEnv(t.TempDir(), sink.URL()), "serve")
	c := newClient(t, srv.BaseURL)
	for path, want := range map[string]string{"/healthz": `"ok"`, "/readyz": `"ready"`, "/metrics": "consentmail_signups_total"} {
		status, body := c.do("GET", path, "", "")
		if status != 200 || !strings.Contains(body, want) {
			t.Errorf("GET %s: got %d %.200s, want 200 containing %s", path, status, body, want)
		}
	}
	status, body := c.do("GET", "/api/v1/lists", "", "")
	if status != 401 || !strings.Contains(body, `"code":"unauthorized"`) {
		t.Errorf("no key: got %d %s, want 401 unauthorized", status, body)
	}
	var key struct {
		Key string `json:"key"`
	}
	if st := c.admin("POST", "/api/v1/apikeys", `{"role":"viewer","name":"ro"}`, &key); st != 201 || key.Key == "" {
		t.Fatalf("create viewer key: %d", st)
	}
	status, _ = c.do("GET", "/api/v1/lists", "", "", "Authorization", "Bearer "+key.Key)
	if status != 200 {
		t.Errorf("viewer GET lists: %d, want 200", status)
	}
	status, body = c.do("POST", "/api/v1/lists", "application/json", `{"id":"x","name":"x","purpose":"x","consent_text":"x"}`, "Authorization", "Bearer "+key.Key)
	if status != 403 || !strings.Contains(body, `"code":"forbidden"`) {
		t.Errorf("viewer POST lists: got %d %s, want 403", status, body)
	}
	status, body = c.do("GET", "/api/v1/nope", "", "")
	if status != 404 || !strings.Contains(body, `"error"`) {
		t.Errorf("unknown API route: got %d %s, want 404 with the error shape", status, body)
	}
}

// TestDataDirHoldsNoPlaintext signs people up and scans every byte of the data
// directory for their addresses.
func TestDataDirHoldsNoPlaintext(t *testing.T) {
	sink := smtptest.New(t)
	dir := t.TempDir()
	srv := startServer(t, serveEnv(dir, sink.URL()), "serve")
	c := newClient(t, srv.BaseURL)
	c.createList("weekly")
	var emails []string
	for i := 0; i < 20; i++ {
		e := fmt.Sprintf("plaintext-probe-%02d@secret-domain.example", i)
		emails = append(emails, e)
		c.signup(e, "weekly")
	}
	msgs := sink.WaitFor(t, 20, 20*time.Second)
	status, _ := c.do("POST", confirmURL(t, msgs[0].Text), "application/x-www-form-urlencoded", "")
	if status != 200 {
		t.Fatalf("confirm: %d", status)
	}
	srv.Stop(t)
	probes := append([]string{"secret-domain", "Test Person", "e2e-test/1.0"}, emails...)
	scanDir(t, dir, probes)
}

// scanDir fails if any file below dir contains one of the probes, in any case.
func scanDir(tb testing.TB, dir string, probes []string) {
	tb.Helper()
	files := 0
	err := filepath.Walk(dir, func(path string, info os.FileInfo, err error) error {
		if err != nil || info.IsDir() {
			return err
		}
		files++
		raw, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		lower := bytes.ToLower(raw)
		for _, p := range probes {
			if bytes.Contains(lower, []byte(strings.ToLower(p))) {
				tb.Errorf("%s contains %q in plaintext", path, p)
			}
		}
		return nil
	})
	if err != nil || files == 0 {
		tb.Fatalf("scan %s: %d files, err %v", dir, files, err)
	}
}

// TestRestartKeepsStateAndQueuedMail queues a confirmation while the relay is down,
// restarts, and sees the mail delivered and the link working.
func TestRestartKeepsStateAndQueuedMail(t *testing.T) {
	dir := t.TempDir()
	down := closedPort(t)
	srv := startServer(t, serveEnv(dir, "smtp://"+down+"?tls=none"), "serve")
	c := newClient(t, srv.BaseURL)
	c.createList("weekly")
	c.signup("restart@example.org", "weekly")
	// The first attempt fails against the closed port and is scheduled for a retry.
	waitUntil(t, func() bool {
		return strings.Contains(c.metrics(), `consentmail_sends_total{result="temporary_failure"} 1`)
	})
	srv.Stop(t)

	sink := smtptest.New(t)
	srv = startServer(t, serveEnv(dir, sink.URL()), "serve")
	c = newClient(t, srv.BaseURL)
	msgs := sink.WaitFor(t, 1, 30*time.Second)
	if msgs[0].To[0] != "restart@example.org" {
		t.Fatalf("mail to %v", msgs[0].To)
	}
	status, page := c.do("POST", confirmURL(t, msgs[0].Text), "application/x-www-form-urlencoded", "")
	if status != 200 || !strings.Contains(page, "You are subscribed") {
		t.Fatalf("confirm after restart: %d\n%s", status, page)
	}
	var l struct {
		ID string `json:"id"`
	}
	if st := c.admin("GET", "/api/v1/lists/weekly", "", &l); st != 200 || l.ID != "weekly" {
		t.Fatalf("list after restart: %d %+v", st, l)
	}
	waitUntil(t, func() bool { return len(c.ledger("type=confirmation_sent")) == 1 })
	if n := len(c.ledger("")); n != 3 {
		t.Fatalf("ledger after restart has %d events, want 3 (signup, confirmation_sent, confirmed)", n)
	}
}

func (c *client) metrics() string {
	_, body := c.do("GET", "/metrics", "", "")
	return body
}

// closedPort returns a loopback address nothing listens on.
func closedPort(tb testing.TB) string {
	tb.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return addr
}

// waitUntil polls cond (a condition on the system under test, not a clock) for up to
// 20 s.
func waitUntil(tb testing.TB, cond func() bool) {
	tb.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			tb.Fatal("condition not met within 20s")
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestCommandsFailFastWhileServerRuns(t *testing.T) {
	sink := smtptest.New(t)
	dir := t.TempDir()
	startServer(t, serveEnv(dir, sink.URL()), "serve")
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"apikey", "create", "--role", "viewer"}, "POST /api/v1/apikeys"},
		{[]string{"ledger", "verify"}, "GET /api/v1/ledger/verify"},
	} {
		t.Run(tc.args[0], func(t *testing.T) {
			start := time.Now()
			err := run(context.Background(), append([]string{"consentmail"}, tc.args...), []string{"CONSENTMAIL_DATA_DIR=" + dir}, io.Discard, io.Discard)
			took := time.Since(start)
			if err == nil || !strings.Contains(err.Error(), "server is running") || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("got %v, want an error saying a server is running and naming %s", err, tc.want)
			}
			if took > 2*time.Second {
				t.Fatalf("took %v, want under 2s", took)
			}
		})
	}
}

func TestAPIKeyCreateCommand(t *testing.T) {
	dir := t.TempDir()
	var out, errOut bytes.Buffer
	err := run(context.Background(), []string{"consentmail", "apikey", "create", "--role", "dpo", "--name", "dpo desk"},
		[]string{"CONSENTMAIL_DATA_DIR=" + dir}, &out, &errOut)
	if err != nil {
		t.Fatalf("apikey create: %v\n%s", err, errOut.String())
	}
	key := strings.TrimSpace(out.String())
	if !strings.HasPrefix(key, "cmk_") || len(key) < 30 {
		t.Fatalf("printed %q, want a cmk_ key", key)
	}
	raw, err := os.ReadFile(filepath.Join(dir, dbFile))
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(raw, []byte(key)) {
		t.Fatal("the key is stored in plaintext")
	}
	// The key works against a server on the same data directory.
	sink := smtptest.New(t)
	srv := startServer(t, serveEnv(dir, sink.URL()), "serve")
	c := newClient(t, srv.BaseURL)
	if status, body := c.do("GET", "/api/v1/ledger", "", "", "Authorization", "Bearer "+key); status != 200 {
		t.Fatalf("dpo key on the ledger: %d %s", status, body)
	}
	if status, _ := c.do("POST", "/api/v1/apikeys", "application/json", `{"role":"admin"}`, "Authorization", "Bearer "+key); status != 403 {
		t.Fatalf("dpo key creating keys: %d, want 403", status)
	}
}

func TestConfigurationErrors(t *testing.T) {
	dir := t.TempDir()
	base := map[string]string{"CONSENTMAIL_DATA_DIR": dir, "CONSENTMAIL_HTTP_ADDR": "127.0.0.1:0",
		"CONSENTMAIL_SECRET": testSecret, "CONSENTMAIL_SMTP_URL": "smtp://127.0.0.1:2525?tls=none"}
	with := func(k, v string) map[string]string {
		m := map[string]string{}
		for a, b := range base {
			m[a] = b
		}
		if v == "" {
			delete(m, k)
		} else {
			m[k] = v
		}
		return m
	}
	for _, tc := range []struct {
		name string
		env  map[string]string
		args []string
		want string
	}{
		{"no secret", with("CONSENTMAIL_SECRET", ""), nil, "CONSENTMAIL_SECRET"},
		{"short secret", with("CONSENTMAIL_SECRET", "short"), nil, "at least 32 bytes"},
		{"no relay", with("CONSENTMAIL_SMTP_URL", ""), nil, "CONSENTMAIL_SMTP_URL"},
		{"bad relay", with("CONSENTMAIL_SMTP_URL", "http://x"), nil, "CONSENTMAIL_SMTP_URL"},
		{"bad rate", with("CONSENTMAIL_SIGNUP_RATE", "ten"), nil, "CONSENTMAIL_SIGNUP_RATE"},
		{"bad ttl", with("CONSENTMAIL_OPTIN_TTL", "forever"), nil, "CONSENTMAIL_OPTIN_TTL"},
		{"bad base url", with("CONSENTMAIL_BASE_URL", "ftp://x"), nil, "CONSENTMAIL_BASE_URL"},
		{"bad addr", with("CONSENTMAIL_HTTP_ADDR", "8080"), nil, "CONSENTMAIL_HTTP_ADDR"},
		{"unknown variable", with("CONSENTMAIL_HTTP_ADR", "x"), nil, "unknown configuration variable CONSENTMAIL_HTTP_ADR"},
		{"flag overrides env", base, []string{"--signup-rate", "lots"}, "--signup-rate"},
		{"bad role", base, []string{"--role", "boss"}, "--role"},
		{"complaint rate above 1", with("CONSENTMAIL_PAUSE_COMPLAINT_RATE", "3"), nil, "CONSENTMAIL_PAUSE_COMPLAINT_RATE"},
		{"bounce rate of 0", with("CONSENTMAIL_PAUSE_BOUNCE_RATE", "0"), nil, "CONSENTMAIL_PAUSE_BOUNCE_RATE"},
		{"minimum sent not a number", with("CONSENTMAIL_PAUSE_MIN_SENT", "many"), nil, "CONSENTMAIL_PAUSE_MIN_SENT"},
		{"profiler on a public address", with("CONSENTMAIL_DEBUG_ADDR", "0.0.0.0:6060"), nil, "CONSENTMAIL_DEBUG_ADDR"},
		{"profiler on a host name", with("CONSENTMAIL_DEBUG_ADDR", "example.org:6060"), nil, "CONSENTMAIL_DEBUG_ADDR"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := run(context.Background(), append([]string{"consentmail", "serve"}, tc.args...), environ(tc.env), io.Discard, io.Discard)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("got %v, want an error mentioning %q", err, tc.want)
			}
		})
	}
	if err := run(context.Background(), []string{"consentmail", "serve", "--no-such-flag"}, environ(base), io.Discard, io.Discard); err == nil {
		t.Fatal("unknown flag accepted")
	}
}

// With CONSENTMAIL_DEBUG_ADDR, Go's profiler answers there, and only there: the
// public listener has no /debug/pprof.
func TestProfilerOnItsOwnLoopbackAddress(t *testing.T) {
	env := serveEnv(t.TempDir(), "smtp://127.0.0.1:2525?tls=none")
	env["CONSENTMAIL_DEBUG_ADDR"] = "127.0.0.1:0"
	env["CONSENTMAIL_LOG_LEVEL"] = "info"
	srv := startServer(t, env, "serve")
	addr := srv.Stderr.waitFor(t, regexp.MustCompile(`"msg":"profiler listening","addr":"([^"]+)"`), srv.done)
	resp, err := http.Get("http://" + addr + "/debug/pprof/heap?debug=1")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || !strings.Contains(string(body), "heap profile") {
		t.Fatalf("profiler: %d %.200s", resp.StatusCode, body)
	}
	if status, _ := newClient(t, srv.BaseURL).do("GET", "/debug/pprof/", "", ""); status != 404 {
		t.Errorf("the public listener answers /debug/pprof/ with %d, want 404", status)
	}
}

func TestDevModeTour(t *testing.T) {
	dir := t.TempDir()
	srv := startServer(t, map[string]string{"CONSENTMAIL_DATA_DIR": dir, "CONSENTMAIL_HTTP_ADDR": "127.0.0.1:0",
		"CONSENTMAIL_DEV_SMTP_ADDR": "127.0.0.1:0", "CONSENTMAIL_LOG_LEVEL": "warn"}, "dev")
	key := srv.Stdout.waitFor(t, regexp.MustCompile(`admin API key:\s+(cmk_\S+)`), srv.done)
	for _, want := range []string{"/subscribe/newsletter", "/dev/inbox"} {
		if !strings.Contains(srv.Stdout.String(), want) {
			t.Errorf("dev output lacks %s:\n%s", want, srv.Stdout.String())
		}
	}
	c := newClient(t, srv.BaseURL)
	if status, _ := c.do("GET", "/api/v1/lists", "", "", "Authorization", "Bearer "+key); status != 200 {
		t.Fatalf("printed admin key rejected: %d", status)
	}
	c.signup("tour@example.org", "newsletter")
	var inbox struct {
		Items []struct {
			To   []string `json:"to"`
			Text string   `json:"text"`
		} `json:"items"`
	}
	waitUntil(t, func() bool {
		_, body := c.do("GET", "/dev/inbox.json", "", "")
		return json.Unmarshal([]byte(body), &inbox) == nil && len(inbox.Items) == 1
	})
	if inbox.Items[0].To[0] != "tour@example.org" {
		t.Fatalf("inbox has mail to %v", inbox.Items[0].To)
	}
	link := confirmURL(t, inbox.Items[0].Text)
	if status, page := c.do("POST", link, "application/x-www-form-urlencoded", ""); status != 200 || !strings.Contains(page, "You are subscribed") {
		t.Fatalf("confirm from the inbox link: %d\n%s", status, page)
	}
	if status, page := c.do("GET", "/dev/inbox", "", ""); status != 200 || !strings.Contains(page, "tour@example.org") {
		t.Fatalf("inbox page: %d", status)
	}
	// The secret made on first start is reused: the link still verifies after a restart.
	srv.Stop(t)
	secret, err := os.ReadFile(filepath.Join(dir, "secret"))
	if err != nil || len(bytes.TrimSpace(secret)) < 32 {
		t.Fatalf("dev secret file: %v (%d bytes)", err, len(secret))
	}
	srv = startServer(t, map[string]string{"CONSENTMAIL_DATA_DIR": dir, "CONSENTMAIL_HTTP_ADDR": "127.0.0.1:0",
		"CONSENTMAIL_DEV_SMTP_ADDR": "127.0.0.1:0", "CONSENTMAIL_LOG_LEVEL": "warn"}, "dev")
	u, _ := url.Parse(link)
	if status, page := newClient(t, srv.BaseURL).do("GET", u.Path, "", ""); status != 200 || !strings.Contains(page, "Already confirmed") {
		t.Fatalf("used link after restart: got %d, want 200 'Already confirmed':\n%s", status, page)
	}
}

// TestLedgerVerifyCommandFindsTampering alters one stored event behind the server's
// back: the command exits 1 and names its sequence number.
func TestLedgerVerifyCommandFindsTampering(t *testing.T) {
	sink := smtptest.New(t)
	dir := t.TempDir()
	srv := startServer(t, serveEnv(dir, sink.URL()), "serve")
	c := newClient(t, srv.BaseURL)
	c.createList("weekly")
	for i := 0; i < 3; i++ {
		c.signup(fmt.Sprintf("tamper-%d@example.org", i), "weekly")
	}
	sink.WaitFor(t, 3, 10*time.Second)
	waitUntil(t, func() bool { return len(c.ledger("type=confirmation_sent")) == 3 })
	srv.Stop(t)

	db, err := bbolt.Open(filepath.Join(dir, dbFile), 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	err = db.Update(func(tx *bbolt.Tx) error {
		b := tx.Bucket([]byte("prefs.ledger"))
		key := []byte{0, 0, 0, 0, 0, 0, 0, 2}
		v := bytes.Clone(b.Get(key))
		v[len(v)-3] ^= 1 // one bit of the body of event 2
		return b.Put(key, v)
	})
	db.Close()
	if err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	err = run(context.Background(), []string{"consentmail", "ledger", "verify"}, []string{"CONSENTMAIL_DATA_DIR=" + dir}, &out, io.Discard)
	var ee exitError
	if !errors.As(err, &ee) || ee.code != 1 || !strings.Contains(out.String(), "BROKEN at seq 2") {
		t.Fatalf("got %v and %q, want exit status 1 naming seq 2", err, out.String())
	}
}

func TestCORSForConfiguredOrigins(t *testing.T) {
	sink := smtptest.New(t)
	env := serveEnv(t.TempDir(), sink.URL())
	env["CONSENTMAIL_CORS_ORIGINS"] = "https://www.shop.example"
	srv := startServer(t, env, "serve")
	c := newClient(t, srv.BaseURL)
	c.createList("weekly")
	req, _ := http.NewRequest("OPTIONS", srv.BaseURL+"/api/v1/signups", nil)
	req.Header.Set("Origin", "https://www.shop.example")
	req.Header.Set("Access-Control-Request-Method", "POST")
	req.Header.Set("Access-Control-Request-Headers", "content-type")
	res, err := c.http.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if got := res.Header.Get("Access-Control-Allow-Origin"); got != "https://www.shop.example" || res.StatusCode >= 300 {
		t.Fatalf("preflight from the configured origin: %d, Allow-Origin %q", res.StatusCode, got)
	}
	for origin, want := range map[string]string{"https://www.shop.example": "https://www.shop.example", "https://evil.example": ""} {
		req, _ := http.NewRequest("POST", srv.BaseURL+"/api/v1/signups", strings.NewReader(`{"email":"cors@example.org","lists":["weekly"],"consent":true}`))
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Origin", origin)
		res, err := c.http.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
		if got := res.Header.Get("Access-Control-Allow-Origin"); got != want {
			t.Errorf("POST from %s: Allow-Origin %q, want %q", origin, got, want)
		}
	}
}

// A connection that never sends a request (browsers open them ahead of time) must not
// hold up a graceful stop until its timeout.
func TestShutdownClosesSilentConnections(t *testing.T) {
	sink := smtptest.New(t)
	srv := startServer(t, serveEnv(t.TempDir(), sink.URL()), "serve")
	u, _ := url.Parse(srv.BaseURL)
	conn, err := net.Dial("tcp", u.Host)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	// One served request proves the connection above is accepted, not just queued.
	if status, _ := newClient(t, srv.BaseURL).do("GET", "/healthz", "", ""); status != 200 {
		t.Fatalf("healthz: %d", status)
	}
	srv.Stop(t)
	if log := srv.Stderr.String(); strings.Contains(log, "HTTP shutdown") {
		t.Fatalf("shutdown waited for the silent connection:\n%s", log)
	}
}

// The templates API is mounted: a template is checked when saved and previewed with
// the mandatory footer.
func TestTemplatesAPIMounted(t *testing.T) {
	sink := smtptest.New(t)
	env := serveEnv(t.TempDir(), sink.URL())
	env["CONSENTMAIL_POSTAL_ADDRESS"] = "1 rue de la Paix, 75002 Paris"
	srv := startServer(t, env, "serve")
	c := newClient(t, srv.BaseURL)
	var bad struct {
		Error struct {
			Fields map[string]string `json:"fields"`
		} `json:"error"`
	}
	if st := c.admin("POST", "/api/v1/templates", `{"name":"Broken","subject":"Hi","html":"<p>\n{{.Subscriber.Nmae}}</p>"}`, &bad); st != 422 || bad.Error.Fields["html"] == "" {
		t.Fatalf("broken template: %d %+v, want 422 naming the html part", st, bad)
	}
	var tpl struct {
		ID string `json:"id"`
	}
	if st := c.admin("POST", "/api/v1/templates", `{"name":"Monthly","subject":"News for {{.Subscriber.Name}}","html":"<p>Hello {{.Subscriber.Name}}</p>"}`, &tpl); st != 201 || tpl.ID == "" {
		t.Fatalf("create template: %d %+v", st, tpl)
	}
	var preview struct {
		Subject, HTML, Text string
	}
	if st := c.admin("POST", "/api/v1/templates/"+tpl.ID+"/preview", `{}`, &preview); st != 200 {
		t.Fatalf("preview: %d", st)
	}
	for _, part := range []string{preview.HTML, preview.Text} {
		if !strings.Contains(part, srv.BaseURL+"/u/") || !strings.Contains(part, "75002 Paris") {
			t.Errorf("preview part lacks the footer (unsubscribe link, postal address):\n%s", part)
		}
	}
}

// Every page is served with strict headers and without cookies: the hosted form and
// the confirmation page work with cookies and JavaScript off.
func TestPagesHaveStrictHeadersAndNoCookies(t *testing.T) {
	sink := smtptest.New(t)
	srv := startServer(t, serveEnv(t.TempDir(), sink.URL()), "serve")
	c := newClient(t, srv.BaseURL)
	c.createList("weekly")
	c.signup("headers@example.org", "weekly")
	link := confirmURL(t, sink.WaitFor(t, 1, 10*time.Second)[0].Text)
	for _, tc := range []struct{ method, url string }{
		{"GET", srv.BaseURL + "/subscribe/weekly"},
		{"GET", link},
		{"POST", link},
		{"GET", srv.BaseURL + "/confirm/forged.token"},
	} {
		req, _ := http.NewRequest(tc.method, tc.url, nil)
		res, err := c.http.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
		h := res.Header
		if csp := h.Get("Content-Security-Policy"); !strings.Contains(csp, "default-src 'none'") ||
			!strings.Contains(csp, "frame-ancestors 'none'") || strings.Contains(csp, "script-src") {
			t.Errorf("%s %s: CSP %q, want default-src 'none', frame-ancestors 'none' and no scripts", tc.method, tc.url, csp)
		}
		for k, want := range map[string]string{"X-Frame-Options": "DENY", "Referrer-Policy": "no-referrer",
			"X-Content-Type-Options": "nosniff", "Cache-Control": "no-store"} {
			if got := h.Get(k); got != want {
				t.Errorf("%s %s: %s = %q, want %q", tc.method, tc.url, k, got, want)
			}
		}
		if len(res.Cookies()) > 0 || !strings.HasPrefix(h.Get("Content-Type"), "text/html") {
			t.Errorf("%s %s: cookies %v, content type %q; want none and HTML", tc.method, tc.url, res.Cookies(), h.Get("Content-Type"))
		}
	}
}
