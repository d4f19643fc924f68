package campaigns_test

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/gofiber/fiber/v2"
	"go.etcd.io/bbolt"

	"consentmail/preferences"
	"consentmail/preferences/apiauth"
	"consentmail/preferences/httperr"
	"consentmail/queue"
	"consentmail/queue/campaigns"
)

var epoch = time.Date(2026, 3, 14, 9, 26, 53, 0, time.UTC)

const baseURL = "https://mail.example.org"

// env is the templates API over a real bbolt file, with one key per role.
type env struct {
	db    *bbolt.DB
	prefs *preferences.Store
	store *campaigns.Store
	app   *fiber.App
	keys  map[string]string // role -> key
}

func newEnv(t *testing.T) *env {
	t.Helper()
	db, err := bbolt.Open(filepath.Join(t.TempDir(), "consentmail.db"), 0o600, &bbolt.Options{Timeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	now := func() time.Time { return epoch }
	prefs, err := preferences.New(db, []byte("campaigns-test-secret-0123456789abcdef"), now)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := prefs.Close(); err != nil {
			t.Errorf("preferences Close: %v", err)
		}
		if err := db.Close(); err != nil {
			t.Errorf("bbolt Close: %v", err)
		}
	})
	store, err := campaigns.NewStore(db, now)
	if err != nil {
		t.Fatal(err)
	}
	log := slog.New(slog.NewTextHandler(t.Output(), nil))
	app := fiber.New(fiber.Config{ErrorHandler: httperr.Handler(log), Immutable: true}) // Immutable as in cmd
	auth := apiauth.New(preferences.NewAuthenticator(prefs), now)
	campaigns.NewAPI(store, prefs, auth,
		campaigns.FooterConfig{BaseURL: baseURL, PostalAddress: "1 rue de la Paix\n75002 Paris", Company: "Example SAS"}).Routes(app)
	// The campaigns API over an engine that is not running: the API's answers do not
	// depend on it (sending is tested in engine_test.go).
	q, err := queue.NewBolt(db, queue.BoltOptions{Commit: prefs.GroupCommit, Now: now})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { q.Close() })
	tracker, err := campaigns.NewBoltTracker(db, prefs.GroupCommit, prefs, nil, now)
	if err != nil {
		t.Fatal(err)
	}
	codec, err := campaigns.NewJobCodec([]byte(engineSecret))
	if err != nil {
		t.Fatal(err)
	}
	engine := campaigns.NewEngine(store, prefs, tracker, q, prefs.GroupCommit, codec, prefs,
		campaigns.EngineConfig{DefaultFrom: "News <news@example.org>", IDsOnly: true}, now, log, nil)
	campaigns.NewCampaignAPI(engine, auth).Routes(app)
	e := &env{db: db, prefs: prefs, store: store, app: app, keys: map[string]string{}}
	for _, role := range []string{preferences.RoleAdmin, preferences.RoleMarketer, preferences.RoleDPO, preferences.RoleViewer} {
		_, key, err := prefs.CreateAPIKey(context.Background(), role, role+" key")
		if err != nil {
			t.Fatal(err)
		}
		e.keys[role] = key
	}
	return e
}

type response struct {
	status int
	body   []byte
}

func (r response) json(tb testing.TB) map[string]any {
	tb.Helper()
	var m map[string]any
	if err := json.Unmarshal(r.body, &m); err != nil {
		tb.Fatalf("body %q is not a JSON object: %v", r.body, err)
	}
	return m
}

// do sends a request as role ("" for no key); a string body is sent as it is, any
// other non-nil body marshalled.
func (e *env) do(tb testing.TB, role, method, path string, body any) response {
	tb.Helper()
	var rd io.Reader
	if body != nil {
		raw, ok := body.(string)
		if !ok {
			b, err := json.Marshal(body)
			if err != nil {
				tb.Fatal(err)
			}
			raw = string(b)
		}
		rd = strings.NewReader(raw)
	}
	req := httptest.NewRequest(method, path, rd)
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if role != "" {
		req.Header.Set("Authorization", "Bearer "+e.keys[role])
	}
	resp, err := e.app.Test(req, -1)
	if err != nil {
		tb.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		tb.Fatal(err)
	}
	return response{status: resp.StatusCode, body: b}
}

// wantStatus fails unless r has the status, and returns its JSON body (nil if none).
func wantStatus(tb testing.TB, r response, status int) map[string]any {
	tb.Helper()
	if r.status != status {
		tb.Fatalf("status = %d, want %d (body %s)", r.status, status, r.body)
	}
	if len(r.body) == 0 {
		return nil
	}
	return r.json(tb)
}

// errorFields checks the contract's error shape and code and returns its fields.
func errorFields(tb testing.TB, r response, status int, code string) map[string]any {
	tb.Helper()
	m := wantStatus(tb, r, status)
	e, ok := m["error"].(map[string]any)
	if !ok || len(m) != 1 {
		tb.Fatalf("body = %s, want {\"error\": {...}}", r.body)
	}
	if e["code"] != code {
		tb.Errorf("error.code = %v, want %q", e["code"], code)
	}
	if msg, _ := e["message"].(string); msg == "" {
		tb.Errorf("error.message = %v, want human text", e["message"])
	}
	fields, _ := e["fields"].(map[string]any)
	return fields
}

// countTemplates counts what the store holds.
func (e *env) countTemplates(tb testing.TB) int {
	tb.Helper()
	items, _, err := e.store.List(context.Background(), "", 1000)
	if err != nil {
		tb.Fatal(err)
	}
	return len(items)
}

// mustSubscriber signs up a subscriber to a fresh public list and returns their id.
func (e *env) mustSubscriber(tb testing.TB, name, locale string) string {
	tb.Helper()
	ctx := context.Background()
	if _, err := e.prefs.List(ctx, "news"); err != nil {
		_, err := e.prefs.CreateList(ctx, preferences.List{ID: "news", Name: "News", Purpose: "news",
			ConsentText: "Yes, send me news", Public: true})
		if err != nil {
			tb.Fatalf("CreateList: %v", err)
		}
	}
	addr := strings.ToLower(locale) + "@example.org"
	noEnqueue := func(*bbolt.Tx, preferences.OptinRequest) error { return nil }
	err := e.prefs.Signup(ctx, preferences.SignupInput{Email: addr, IndexKey: addr, Name: name, Locale: locale,
		Lists: []string{"news"}, Source: "test", IP: "192.0.2.1", UserAgent: "test"}, noEnqueue)
	if err != nil {
		tb.Fatalf("Signup: %v", err)
	}
	events, _, err := e.prefs.Ledger(ctx, preferences.LedgerQuery{Type: preferences.EventSignup, Limit: 1000})
	if err != nil {
		tb.Fatal(err)
	}
	for i := len(events) - 1; i >= 0; i-- {
		if events[i].Subscriber != "" {
			return events[i].Subscriber
		}
	}
	tb.Fatal("no signup in the ledger")
	return ""
}
