package optin_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"net/url"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gofiber/fiber/v2"
	"github.com/prometheus/client_golang/prometheus"
	"go.etcd.io/bbolt"

	"consentmail/mailer"
	"consentmail/mailer/smtptest"
	"consentmail/optin"
	"consentmail/preferences"
	"consentmail/preferences/clientip"
	"consentmail/preferences/httperr"
	"consentmail/preferences/linktoken"
	"consentmail/queue"
	"consentmail/queue/queuetest"
	"consentmail/templates"
)

// Fixed test inputs. The clock starts on a whole second so that token expiries (whole
// seconds) fall exactly OptinTTL after the mail was sent.
var (
	start  = time.Date(2026, 3, 2, 9, 0, 0, 0, time.UTC)
	secret = []byte("optin-test-root-secret-0123456789abcdef")
)

const (
	baseURL  = "http://example.test"
	optinTTL = 168 * time.Hour
	clientIP = "198.51.100.7"
	clientUA = "optin-test/1.0"
	sysFrom  = "Newsletter <newsletter@example.test>"
	wait     = 10 * time.Second
)

// The lists every env starts with.
var (
	newsletter = preferences.List{ID: "newsletter", Name: "Monthly newsletter",
		Purpose:     "News about our products, once a month",
		ConsentText: "I agree to receive the monthly newsletter by email.",
		PrivacyURL:  "https://example.test/privacy-notice", Public: true}
	internal = preferences.List{ID: "internal", Name: "Staff notes", Purpose: "Internal memos",
		ConsentText: "Staff only.", Public: false}
)

// env is the real optin package wired as cmd wires it: bbolt in a temp dir, the store,
// the embedded queue, the templates, a Fiber app and a Mailer sending to an SMTP sink
// on loopback.
type env struct {
	db     *bbolt.DB
	clock  *queuetest.Clock
	cfg    optin.Config
	store  *preferences.Store
	queue  *queue.Bolt
	pages  *templates.Renderer
	signer *linktoken.Signer
	app    *fiber.App
	mailer *optin.Mailer
	sink   *smtptest.Sink
	links  *prefLinks
}

// prefLinks records the preference-link mail the handler asks for: blind indexes.
type prefLinks struct {
	mu      sync.Mutex
	indexes [][]byte
}

func (l *prefLinks) QueuePreferencesLink(_ context.Context, emailIndex []byte) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.indexes = append(l.indexes, slices.Clone(emailIndex))
	return nil
}

func (l *prefLinks) asked() [][]byte {
	l.mu.Lock()
	defer l.mu.Unlock()
	return slices.Clone(l.indexes)
}

// newEnv builds an env; opts may change the optin configuration before it is used.
func newEnv(tb testing.TB, opts ...func(*optin.Config)) *env {
	tb.Helper()
	clock := queuetest.NewClock(start)
	db, err := bbolt.Open(filepath.Join(tb.TempDir(), "consentmail.db"), 0o600, &bbolt.Options{Timeout: time.Second})
	if err != nil {
		tb.Fatalf("bbolt.Open: %v", err)
	}
	tb.Cleanup(func() { db.Close() })
	store, err := preferences.New(db, secret, clock.Now)
	if err != nil {
		tb.Fatalf("preferences.New: %v", err)
	}
	tb.Cleanup(func() { store.Close() })
	q, err := queue.NewBolt(db, queue.BoltOptions{Now: clock.Now})
	if err != nil {
		tb.Fatalf("queue.NewBolt: %v", err)
	}
	tb.Cleanup(func() { q.Close() })
	pages, err := templates.New(templates.Site{Company: "Example Co", PrivacyURL: "https://example.test/privacy"})
	if err != nil {
		tb.Fatalf("templates.New: %v", err)
	}
	signer := linktoken.NewSigner(preferences.DeriveKey(secret, "optin-links"))
	cfg := optin.Config{BaseURL: baseURL, OptinTTL: optinTTL, SignupRate: optin.Rate{N: 1000, Per: time.Minute}}
	for _, o := range opts {
		o(&cfg)
	}
	log := slog.New(slog.DiscardHandler)
	links := &prefLinks{}
	h := optin.NewHandler(store, pages, signer, q, links, cfg, clock.Now, log, prometheus.NewRegistry())
	// The client IP comes from X-Forwarded-For through cmd's resolver, with the proxy
	// app.Test connects from (0.0.0.0) trusted, so that tests can choose it.
	// Immutable, as cmd's app is: handlers may keep what they read from a request.
	app := fiber.New(fiber.Config{ErrorHandler: httperr.Handler(log), DisableStartupMessage: true, Immutable: true})
	app.Use(clientip.New([]netip.Prefix{netip.MustParsePrefix("0.0.0.0/32")}).Middleware())
	h.Routes(app)

	sink := smtptest.New(tb)
	relays, err := mailer.ParseRelays(sink.URL())
	if err != nil {
		tb.Fatalf("ParseRelays(%q): %v", sink.URL(), err)
	}
	sender, err := mailer.NewSender(relays, mailer.Options{HeloName: "test.localhost"})
	if err != nil {
		tb.Fatalf("NewSender: %v", err)
	}
	tb.Cleanup(func() { sender.Close() })
	m := optin.NewMailer(store, pages, signer, sender, sysFrom, cfg, clock.Now, log)

	e := &env{db: db, clock: clock, cfg: cfg, store: store, queue: q, pages: pages, signer: signer, app: app, mailer: m, sink: sink,
		links: links}
	e.createList(tb, newsletter)
	e.createList(tb, internal)
	return e
}

func (e *env) createList(tb testing.TB, l preferences.List) preferences.List {
	tb.Helper()
	l, err := e.store.CreateList(context.Background(), l)
	if err != nil {
		tb.Fatalf("CreateList(%s): %v", l.ID, err)
	}
	return l
}

// response is a fully read HTTP response.
type response struct {
	status int
	header http.Header
	body   []byte
}

type reqOpt func(*http.Request)

func withIP(ip string) reqOpt { return func(r *http.Request) { r.Header.Set("X-Forwarded-For", ip) } }
func withUA(ua string) reqOpt { return func(r *http.Request) { r.Header.Set("User-Agent", ua) } }
func withLang(l string) reqOpt {
	return func(r *http.Request) { r.Header.Set("Accept-Language", l) }
}

// do sends one request through app.Test from clientIP with clientUA unless opts say otherwise.
func (e *env) do(tb testing.TB, method, path, contentType string, body []byte, opts ...reqOpt) response {
	tb.Helper()
	r, err := e.try(method, path, contentType, body, opts...)
	if err != nil {
		tb.Fatal(err)
	}
	return r
}

// try is do for a goroutine other than the test's, where t.Fatal would end only that
// goroutine: it returns its error.
func (e *env) try(method, path, contentType string, body []byte, opts ...reqOpt) (response, error) {
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req := httptest.NewRequest(method, path, rd)
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	req.Header.Set("X-Forwarded-For", clientIP)
	req.Header.Set("User-Agent", clientUA)
	for _, o := range opts {
		o(req)
	}
	resp, err := e.app.Test(req, -1)
	if err != nil {
		return response{}, fmt.Errorf("%s %s: %w", method, path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return response{}, fmt.Errorf("%s %s: read body: %w", method, path, err)
	}
	return response{status: resp.StatusCode, header: resp.Header, body: b}, nil
}

func (e *env) get(tb testing.TB, path string, opts ...reqOpt) response {
	tb.Helper()
	return e.do(tb, http.MethodGet, path, "", nil, opts...)
}

func (e *env) post(tb testing.TB, path string, opts ...reqOpt) response {
	tb.Helper()
	return e.do(tb, http.MethodPost, path, "", nil, opts...)
}

// signupJSON posts v (a value to marshal, or a raw string) to the signup API.
func (e *env) signupJSON(tb testing.TB, v any, opts ...reqOpt) response {
	tb.Helper()
	r, err := e.trySignupJSON(v, opts...)
	if err != nil {
		tb.Fatal(err)
	}
	return r
}

// trySignupJSON is signupJSON for a goroutine other than the test's (see try).
func (e *env) trySignupJSON(v any, opts ...reqOpt) (response, error) {
	body, ok := v.(string)
	if !ok {
		b, err := json.Marshal(v)
		if err != nil {
			return response{}, fmt.Errorf("marshal %v: %w", v, err)
		}
		body = string(b)
	}
	return e.try(http.MethodPost, "/api/v1/signups", "application/json", []byte(body), opts...)
}

// signupFrom is trySignupJSON from a goroutine beside the test: an error fails the
// test (t.Errorf may be called from any goroutine) and gives a response of status 0,
// which no check takes for an answer.
func (e *env) signupFrom(t *testing.T, v any, opts ...reqOpt) response {
	r, err := e.trySignupJSON(v, opts...)
	if err != nil {
		t.Errorf("signup from a goroutine: %v", err)
	}
	return r
}

func (e *env) postForm(tb testing.TB, path string, vals url.Values, opts ...reqOpt) response {
	tb.Helper()
	return e.do(tb, http.MethodPost, path, "application/x-www-form-urlencoded", []byte(vals.Encode()), opts...)
}

// signup is the smallest valid JSON signup for email to the newsletter.
func signup(email string) map[string]any {
	return map[string]any{"email": email, "lists": []string{"newsletter"}, "consent": true}
}

// mustAccept posts a JSON signup and fails unless it is 202 {"status":"pending"}.
func (e *env) mustAccept(tb testing.TB, v any, opts ...reqOpt) response {
	tb.Helper()
	r := e.signupJSON(tb, v, opts...)
	wantPending(tb, r)
	return r
}

func wantPending(tb testing.TB, r response) {
	tb.Helper()
	if r.status != fiber.StatusAccepted {
		tb.Fatalf("status: got %d, want 202; body %s", r.status, r.body)
	}
	if got, want := strings.TrimSpace(string(r.body)), `{"status":"pending"}`; got != want {
		tb.Fatalf("body: got %s, want %s", got, want)
	}
}

// wantError checks the contract's error shape {"error":{"code","message","fields"?}}
// and the status and code, and returns the fields.
func wantError(tb testing.TB, r response, status int, code string) map[string]string {
	tb.Helper()
	if r.status != status {
		tb.Fatalf("status: got %d, want %d; body %s", r.status, status, r.body)
	}
	if ct := r.header.Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
		tb.Errorf("Content-Type: got %q, want application/json", ct)
	}
	var top map[string]json.RawMessage
	if err := json.Unmarshal(r.body, &top); err != nil {
		tb.Fatalf("error body %s is not a JSON object: %v", r.body, err)
	}
	if len(top) != 1 || top["error"] == nil {
		tb.Fatalf("error body: got keys %v, want only \"error\"; body %s", slices.Sorted(maps.Keys(top)), r.body)
	}
	var inner map[string]json.RawMessage
	if err := json.Unmarshal(top["error"], &inner); err != nil {
		tb.Fatalf("error body: \"error\" is not an object: %s", r.body)
	}
	for k := range inner {
		if k != "code" && k != "message" && k != "fields" {
			tb.Errorf("error body: unexpected key %q in %s", k, r.body)
		}
	}
	var e struct {
		Code    *string           `json:"code"`
		Message *string           `json:"message"`
		Fields  map[string]string `json:"fields"`
	}
	if err := json.Unmarshal(top["error"], &e); err != nil {
		tb.Fatalf("error body %s: %v", r.body, err)
	}
	if e.Code == nil || !regexp.MustCompile(`^[a-z][a-z0-9_]*$`).MatchString(*e.Code) {
		tb.Errorf("error code: got %v, want a snake_case string; body %s", e.Code, r.body)
	} else if *e.Code != code {
		tb.Errorf("error code: got %q, want %q", *e.Code, code)
	}
	if e.Message == nil || *e.Message == "" {
		tb.Errorf("error message: got none, want human text; body %s", r.body)
	}
	return e.Fields
}

// wantHTML checks status and an HTML content type.
func wantHTML(tb testing.TB, r response, status int) string {
	tb.Helper()
	if r.status != status {
		tb.Fatalf("status: got %d, want %d; page %s", r.status, status, snippet(r.body))
	}
	if ct := r.header.Get("Content-Type"); !strings.HasPrefix(ct, "text/html") {
		tb.Errorf("Content-Type: got %q, want text/html", ct)
	}
	return string(r.body)
}

// snippet shortens a body for a failure message: a page's heading, else its start.
func snippet(body []byte) string {
	if m := regexp.MustCompile(`<h1>.*?</h1>`).Find(body); m != nil {
		return string(m)
	}
	if len(body) > 300 {
		return string(body[:300]) + "…"
	}
	return string(body)
}

// events returns the ledger events of one type (all types for "").
func (e *env) events(tb testing.TB, typ string) []preferences.Event {
	tb.Helper()
	evs, _, err := e.store.Ledger(context.Background(), preferences.LedgerQuery{Type: typ, Limit: 1000})
	if err != nil {
		tb.Fatalf("Ledger: %v", err)
	}
	return evs
}

// ready is the number of queued messages waiting.
func (e *env) ready(tb testing.TB) int64 {
	tb.Helper()
	st, err := e.queue.Stats(context.Background())
	if err != nil {
		tb.Fatalf("queue Stats: %v", err)
	}
	return st.Ready
}

// wantNothingStored fails if a ledger event or a queued message exists.
func (e *env) wantNothingStored(tb testing.TB) {
	tb.Helper()
	if evs := e.events(tb, ""); len(evs) != 0 {
		tb.Errorf("ledger events: got %d (first %q), want 0", len(evs), evs[0].Type)
	}
	if n := e.ready(tb); n != 0 {
		tb.Errorf("queued messages: got %d, want 0", n)
	}
}

// reserve takes every ready message off the queue without handling it.
func (e *env) reserve(tb testing.TB) []queue.Delivery {
	tb.Helper()
	var out []queue.Delivery
	for e.ready(tb) > 0 {
		ctx, cancel := context.WithTimeout(context.Background(), wait)
		ds, err := e.queue.Reserve(ctx, 100)
		cancel()
		if err != nil {
			tb.Fatalf("Reserve: %v", err)
		}
		out = append(out, ds...)
	}
	return out
}

func (e *env) ack(tb testing.TB, ds ...queue.Delivery) {
	tb.Helper()
	if err := e.queue.Ack(context.Background(), ds...); err != nil {
		tb.Fatalf("Ack: %v", err)
	}
}

// deliver runs every queued message through the real Mailer and returns the mails the
// sink received meanwhile, oldest first.
func (e *env) deliver(tb testing.TB) []mailer.CaughtMessage {
	tb.Helper()
	before := e.sink.Received()
	for _, d := range e.reserve(tb) {
		if d.Kind != optin.KindOptin {
			tb.Fatalf("queued kind: got %q, want %q", d.Kind, optin.KindOptin)
		}
		ctx, cancel := context.WithTimeout(context.Background(), wait)
		err := e.mailer.Handle(ctx, d)
		cancel()
		if err != nil {
			tb.Fatalf("Mailer.Handle: %v", err)
		}
		e.ack(tb, d)
	}
	n := e.sink.Received() - before
	if n == 0 {
		return nil
	}
	msgs := e.sink.WaitFor(tb, before+n, wait)[:n] // newest first
	slices.Reverse(msgs)
	return msgs
}

// deliverOne delivers the queue and fails unless exactly one mail went out.
func (e *env) deliverOne(tb testing.TB) mailer.CaughtMessage {
	tb.Helper()
	msgs := e.deliver(tb)
	if len(msgs) != 1 {
		tb.Fatalf("mails sent: got %d, want 1", len(msgs))
	}
	return msgs[0]
}

var confirmURL = regexp.MustCompile(`https?://[^\s"<>]*/confirm/([A-Za-z0-9_.~%-]+)`)

// tokenOf extracts the confirmation token from a mail's text part.
func tokenOf(tb testing.TB, m mailer.CaughtMessage) string {
	tb.Helper()
	sm := confirmURL.FindStringSubmatch(m.Text)
	if sm == nil {
		tb.Fatalf("no confirmation URL in the text part:\n%s", m.Text)
	}
	tok, err := url.PathUnescape(sm[1])
	if err != nil {
		tb.Fatalf("confirmation URL %q: %v", sm[0], err)
	}
	return tok
}

// subscribe signs email up for the newsletter, delivers the mail and returns the
// subscriber id and the confirmation token.
func (e *env) subscribe(tb testing.TB, body map[string]any, opts ...reqOpt) (sub, token string) {
	tb.Helper()
	e.mustAccept(tb, body, opts...)
	token = tokenOf(tb, e.deliverOne(tb))
	return e.subscriberOf(tb, body["email"].(string)), token
}

// subscriberOf returns the subscriber id of the newest signup event. (The store only
// knows blind-indexed addresses, so the ledger is how a black-box test finds ids.)
func (e *env) subscriberOf(tb testing.TB, email string) string {
	tb.Helper()
	evs := e.events(tb, preferences.EventSignup)
	if len(evs) == 0 {
		tb.Fatalf("no signup event for %s", email)
	}
	return evs[len(evs)-1].Subscriber
}

// subStatus returns the status of subscriber's subscription to list ("" if none).
func (e *env) subStatus(tb testing.TB, sub, list string) string {
	tb.Helper()
	s, err := e.store.Subscriber(context.Background(), sub)
	if err != nil {
		tb.Fatalf("Subscriber(%s): %v", sub, err)
	}
	for _, x := range s.Subscriptions {
		if x.List == list {
			return x.Status
		}
	}
	return ""
}

func confirmPath(token string) string { return "/confirm/" + url.PathEscape(token) }

// waitFor polls cond until it holds, failing the test after ten seconds.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(wait)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// holdPlace holds the data file's write lock and sends a signup of email, which then
// waits for its commit in one of the MaxInFlight places. It is sent again while another
// request has the place (refused then, nothing recorded), so that it ends up holding
// one. release lets the lock go (cleanup does too); the signup's answer comes on held.
func (e *env) holdPlace(t *testing.T, email string, opts ...reqOpt) (held <-chan response, release func()) {
	t.Helper()
	tx, err := e.db.Begin(true)
	if err != nil {
		t.Fatal(err)
	}
	answer, done := make(chan response, 1), make(chan struct{})
	t.Cleanup(func() {
		_ = tx.Rollback()
		<-done // the sender reports nothing after the test has ended
	})
	go func() {
		defer close(done)
		for {
			r := e.signupFrom(t, map[string]any{"email": email, "lists": []string{newsletter.ID}, "consent": true}, opts...)
			if r.status != http.StatusServiceUnavailable {
				answer <- r
				return
			}
		}
	}()
	return answer, func() {
		if err := tx.Rollback(); err != nil {
			t.Fatal(err)
		}
	}
}
