package adminpages_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gofiber/fiber/v2"
	"github.com/gofiber/fiber/v2/middleware/filesystem"
	"go.etcd.io/bbolt"

	"consentmail/mailer"
	"consentmail/mailer/smtptest"
	"consentmail/preferences"
	"consentmail/preferences/linktoken"
	"consentmail/preferences/webauth"
	"consentmail/preferences/webauth/webauthtest"
	"consentmail/queue"
	"consentmail/queue/campaigns"
	"consentmail/queue/campaigns/adminpages"
	"consentmail/templates"
	"consentmail/templates/browsertest"
)

const secret = "adminpages-test-secret-0123456789abcdef"

// env is the pages over a real store, a running engine and worker, and an SMTP sink.
type env struct {
	t      testing.TB
	ctx    context.Context
	prefs  *preferences.Store
	store  *campaigns.Store
	engine *campaigns.Engine
	sink   *smtptest.Sink
	app    *fiber.App
	url    string // the app on a real listener, for the browser

	mu   sync.Mutex
	role string // the role of requests without an X-Test-Role header
}

func newEnv(t testing.TB) *env {
	t.Helper()
	db, err := bbolt.Open(filepath.Join(t.TempDir(), "consentmail.db"), 0o600, &bbolt.Options{Timeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	prefs, err := preferences.New(db, []byte(secret), time.Now)
	if err != nil {
		t.Fatal(err)
	}
	store, err := campaigns.NewStore(db, time.Now)
	if err != nil {
		t.Fatal(err)
	}
	// A minute, as served: the browser flows hold the relay while they look at a page
	// sending, which on a loaded machine can outlast a shorter lease and get the job
	// redelivered, its recipients parked as busy.
	q, err := queue.NewBolt(db, queue.BoltOptions{Commit: prefs.GroupCommit, Visibility: time.Minute, PollInterval: 20 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	tracker, err := campaigns.NewBoltTracker(db, prefs.GroupCommit, prefs, nil, time.Now)
	if err != nil {
		t.Fatal(err)
	}
	codec, err := campaigns.NewJobCodec([]byte(secret))
	if err != nil {
		t.Fatal(err)
	}
	engine := campaigns.NewEngine(store, prefs, tracker, q, prefs.GroupCommit, codec, prefs,
		campaigns.EngineConfig{DefaultFrom: "News <news@example.org>", BatchSize: 5, Window: 40, Poll: 50 * time.Millisecond, IDsOnly: true},
		time.Now, log, nil)
	sink := smtptest.New(t)
	sender, err := mailer.NewSender([]mailer.Relay{sink.Relay(2)}, mailer.Options{})
	if err != nil {
		t.Fatal(err)
	}
	worker := campaigns.NewWorker(tracker, q, sender, codec,
		linktoken.NewSigner(preferences.DeriveKey([]byte(secret), "unsubscribe-links")),
		linktoken.NewSigner(preferences.DeriveKey([]byte(secret), "tracking-links")),
		campaigns.WorkerConfig{BaseURL: "https://mail.example.org", Domain: "example.org", PostalAddress: "1 rue de la Paix, Paris",
			MaxAttempts: 3, PauseRecheck: 100 * time.Millisecond}, time.Now, log)
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	consumer := queue.NewConsumer(q, map[string]queue.Handler{campaigns.KindCampaign: worker.Handle}, 2, log)
	wg.Add(2)
	go func() { defer wg.Done(); consumer.Run(ctx) }()
	go func() { defer wg.Done(); engine.Run(ctx) }()

	site := templates.Site{Company: "Acme"}
	renderer, err := templates.New(site)
	if err != nil {
		t.Fatal(err)
	}
	previews := campaigns.NewAPI(store, prefs, nil, campaigns.FooterConfig{BaseURL: "https://mail.example.org",
		PostalAddress: "1 rue de la Paix, Paris", Company: "Acme"})
	lists := func(ctx context.Context) ([]adminpages.ListInfo, error) {
		var out []adminpages.ListInfo
		for _, l := range prefs.AllLists() {
			n, err := prefs.CountAudience(ctx, []string{l.ID})
			if err != nil {
				return nil, err
			}
			out = append(out, adminpages.ListInfo{ID: l.ID, Name: l.Name, Purpose: l.Purpose,
				LegalBasis: preferences.LegalBasisConsent, Confirmed: n})
		}
		return out, nil
	}
	pages, err := adminpages.New(store, engine, previews, lists, renderer, site, time.Now)
	if err != nil {
		t.Fatal(err)
	}
	e := &env{t: t, ctx: context.Background(), prefs: prefs, store: store, engine: engine, sink: sink, role: preferences.RoleMarketer}
	app := fiber.New(fiber.Config{Immutable: true, DisableStartupMessage: true})
	app.Get("/static/brand.css", func(c *fiber.Ctx) error {
		c.Set(fiber.HeaderContentType, "text/css")
		return c.Send(templates.BrandCSS(site))
	})
	app.Use("/static", filesystem.New(filesystem.Config{Root: http.FS(templates.Static())}))
	admin := app.Group("/admin", func(c *fiber.Ctx) error {
		r := c.Get("X-Test-Role")
		if r == "" {
			e.mu.Lock()
			r = e.role
			e.mu.Unlock()
		}
		webauth.With(c, webauth.Session{UserID: "u-" + r, Email: r + "@acme.test", Role: r, CSRF: "t", Lang: "en"})
		return c.Next()
	})
	require := webauthtest.Require
	pages.Routes(admin, require)
	e.app = app
	t.Cleanup(func() { // after the server's shutdown (Serve's cleanup runs first)
		cancel()
		wg.Wait()
		sender.Close()
		q.Close()
		prefs.Close()
		db.Close()
	})
	e.url = browsertest.Serve(t, app)
	return e
}

type response struct {
	status int
	header http.Header
	body   string
}

// do sends a request as role; form, when not nil, is posted urlencoded.
func (e *env) do(role, method, path string, form url.Values) response {
	e.t.Helper()
	var body io.Reader
	if form != nil {
		body = strings.NewReader(form.Encode())
	}
	req, err := http.NewRequest(method, path, body)
	if err != nil {
		e.t.Fatal(err)
	}
	if form != nil {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	req.Header.Set("X-Test-Role", role)
	resp, err := e.app.Test(req, -1)
	if err != nil {
		e.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		e.t.Fatal(err)
	}
	return response{status: resp.StatusCode, header: resp.Header, body: string(b)}
}

// want fails unless r has status.
func want(tb testing.TB, r response, status int) response {
	tb.Helper()
	if r.status != status {
		tb.Fatalf("status %d, want %d; body:\n%s", r.status, status, r.body)
	}
	return r
}

// redirect fails unless r is a 303 and returns where it leads.
func redirect(tb testing.TB, r response) string {
	tb.Helper()
	want(tb, r, http.StatusSeeOther)
	return r.header.Get("Location")
}

func contains(tb testing.TB, body string, wants ...string) {
	tb.Helper()
	for _, w := range wants {
		if !strings.Contains(body, w) {
			tb.Errorf("page lacks %q", w)
		}
	}
}

// list creates a list.
func (e *env) list(id, purpose string) {
	e.t.Helper()
	if _, err := e.prefs.CreateList(e.ctx, preferences.List{ID: id, Name: "List " + id, Purpose: purpose,
		ConsentText: "Send me " + id, Public: true}); err != nil {
		e.t.Fatal(err)
	}
}

// subscribe signs email up to list, confirmed, and returns the subscriber id.
func (e *env) subscribe(email, list string) string {
	e.t.Helper()
	var req preferences.OptinRequest
	err := e.prefs.Signup(e.ctx, preferences.SignupInput{Email: email, IndexKey: email, Name: "N " + email, Locale: "en",
		Lists: []string{list}, Source: "test", IP: "192.0.2.1", UserAgent: "test"},
		func(_ *bbolt.Tx, r preferences.OptinRequest) error { req = r; return nil })
	if err != nil {
		e.t.Fatal(err)
	}
	if _, err := e.prefs.Confirm(e.ctx, preferences.ConfirmInput{Subscriber: req.Subscriber, Lists: req.Lists, Nonce: req.Nonce}); err != nil {
		e.t.Fatal(err)
	}
	return req.Subscriber
}

func (e *env) audience(list string, n int) {
	for i := range n {
		e.subscribe(fmt.Sprintf("%s-%03d@example.org", list, i), list)
	}
}

// waitCampaign waits until cond holds for campaign id.
func (e *env) waitCampaign(id string, cond func(campaigns.Campaign) bool) campaigns.Campaign {
	e.t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		c, err := e.engine.Get(e.ctx, id)
		if err != nil {
			e.t.Fatal(err)
		}
		if cond(c) {
			return c
		}
		if time.Now().After(deadline) {
			e.t.Fatalf("campaign %s: condition never held: %s %+v", id, c.Status, c.Stats)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
