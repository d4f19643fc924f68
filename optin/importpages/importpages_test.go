package importpages_test

import (
	"bytes"
	"context"
	"io"
	"mime/multipart"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gofiber/fiber/v2"
	"go.etcd.io/bbolt"

	"consentmail/optin"
	"consentmail/optin/importpages"
	"consentmail/preferences"
	"consentmail/preferences/webauth"
	"consentmail/preferences/webauth/webauthtest"
	"consentmail/queue"
	"consentmail/templates"
)

var secret = []byte("importpages-test-secret-0123456789abcdef")

// gate is a TxEnqueuer into the real queue that, while closed, holds every
// confirmation: an import asked to send them cannot end until it opens.
type gate struct {
	q    *queue.Bolt
	once sync.Once
	open chan struct{}
}

func (g *gate) EnqueueTx(tx *bbolt.Tx, msgs ...queue.Message) error {
	<-g.open
	return g.q.EnqueueTx(tx, msgs...)
}

func (g *gate) release() { g.once.Do(func() { close(g.open) }) }

type env struct {
	store *preferences.Store
	queue *queue.Bolt
	gate  *gate
	app   *fiber.App
	pages *importpages.Pages
}

// signedIn stands in for the session middleware: the person is X-Test-User with the
// role X-Test-Role.
func signedIn(c *fiber.Ctx) error {
	user := c.Get("X-Test-User", "u1")
	webauth.With(c, webauth.Session{UserID: user, Email: user + "@acme.test", Role: c.Get("X-Test-Role"), CSRF: "t",
		Lang: c.Query("lang", "en")})
	return c.Next()
}

func newEnv(tb testing.TB) *env {
	tb.Helper()
	db, err := bbolt.Open(filepath.Join(tb.TempDir(), "consentmail.db"), 0o600, &bbolt.Options{Timeout: time.Second})
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { db.Close() })
	store, err := preferences.New(db, secret, time.Now)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { store.Close() })
	q, err := queue.NewBolt(db, queue.BoltOptions{})
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { q.Close() })
	r, err := templates.New(templates.Site{Company: "Acme"})
	if err != nil {
		tb.Fatal(err)
	}
	g := &gate{q: q, open: make(chan struct{})}
	g.release() // open unless a test closes it
	pages, err := importpages.New(store, g, r, templates.Site{Company: "Acme"}, time.Now)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(pages.Close)
	app := fiber.New(fiber.Config{Immutable: true, DisableStartupMessage: true})
	pages.Routes(app.Group("/admin", signedIn), webauthtest.Require)
	for _, l := range []preferences.List{{ID: "news", Name: "Newsletter"}, {ID: "offers", Name: "Offers"}} {
		l.ConsentText, l.PrivacyURL, l.Public = "Yes, send me "+l.Name, "https://acme.test/privacy", true
		if _, err := store.CreateList(context.Background(), l); err != nil {
			tb.Fatal(err)
		}
	}
	return &env{store: store, queue: q, gate: g, app: app, pages: pages}
}

type response struct {
	status int
	header http.Header
	body   string
}

func (e *env) do(tb testing.TB, req *http.Request, role string) response {
	tb.Helper()
	req.Header.Set("X-Test-Role", role)
	res, err := e.app.Test(req, -1)
	if err != nil {
		tb.Fatal(err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	return response{res.StatusCode, res.Header, string(b)}
}

func (e *env) get(tb testing.TB, path, role string) response {
	tb.Helper()
	return e.do(tb, httptest.NewRequest("GET", path, nil), role)
}

// upload posts the import form as a browser does.
func (e *env) upload(tb testing.TB, role, list, name, csv string, sendOptin bool) response {
	tb.Helper()
	var body bytes.Buffer
	w := multipart.NewWriter(&body)
	w.WriteField("_csrf", "t")
	w.WriteField("list", list)
	if sendOptin {
		w.WriteField("send_optin", "true")
	}
	if name != "" {
		fw, _ := w.CreateFormFile("file", name)
		io.WriteString(fw, csv)
	}
	w.Close()
	req := httptest.NewRequest("POST", "/admin/imports", &body)
	req.Header.Set("Content-Type", w.FormDataContentType())
	return e.do(tb, req, role)
}

// finish waits until the import at location has ended (its progress fragment says
// so) and returns its page.
func (e *env) finish(tb testing.TB, location, role string) string {
	tb.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		r := e.get(tb, location+"/progress", role)
		if r.status != 200 {
			tb.Fatalf("progress: %d %s", r.status, r.body)
		}
		if r.header.Get("HX-Redirect") == location {
			break
		}
		if time.Now().After(deadline) {
			tb.Fatalf("the import did not end: %s", r.body)
		}
		time.Sleep(5 * time.Millisecond)
	}
	r := e.get(tb, location, role)
	if r.status != 200 {
		tb.Fatalf("result: %d", r.status)
	}
	return r.body
}

const sample = "email,name,consented_at,consent_source,city\n" +
	"ana@example.org,Ana,2024-05-01,paper form,Lyon\n" + // 2: proof: confirmed
	"bob@example.org,Bob,,,\n" + // 3: pending
	"not-an-address,X,,,\n" + // 4
	"carl@example.org,Carl,2024-05-01,,\n" + // 5: half a proof
	"known@example.org,Known,,,\n" + // 6: withdrew before: the rules refuse it
	"dora@example.org,Dora,2999-01-01,web,\n" // 7: in the future

// withdrawn makes known@example.org a person who withdrew from news.
func (e *env) withdrawn(tb testing.TB) {
	tb.Helper()
	ctx := context.Background()
	if _, err := optin.Import(ctx, e.store, "news", "test", strings.NewReader(
		"email,consented_at,consent_source\nknown@example.org,2024-01-01,fair\n"), nil); err != nil {
		tb.Fatal(err)
	}
	id, ok := e.store.LookupEmail(ctx, "known@example.org")
	if !ok {
		tb.Fatal("known@example.org not imported")
	}
	if _, err := e.store.Unsubscribe(ctx, preferences.UnsubscribeInput{Subscriber: id, Method: "link"}); err != nil {
		tb.Fatal(err)
	}
}

func (e *env) status(tb testing.TB, addr, list string) string {
	tb.Helper()
	id, ok := e.store.LookupEmail(context.Background(), addr)
	if !ok {
		return "absent"
	}
	sub, err := e.store.Subscriber(context.Background(), id)
	if err != nil {
		tb.Fatal(err)
	}
	for _, s := range sub.Subscriptions {
		if s.List == list {
			return s.Status
		}
	}
	return ""
}

func TestImportListsTheRejectedLinesAndStoresTheGoodOnes(t *testing.T) {
	for _, tc := range []struct {
		role              string
		imported, pending string
		rejected          []string // line numbers, in order
	}{
		// An admin is told which rows the consent rules refused…
		{preferences.RoleAdmin, "1", "1", []string{"4", "5", "6", "7"}},
		// …a marketer is not: the withdrawn person's row counts as a row without proof.
		{preferences.RoleMarketer, "1", "2", []string{"4", "5", "7"}},
	} {
		t.Run(tc.role, func(t *testing.T) {
			e := newEnv(t)
			e.withdrawn(t)
			r := e.upload(t, tc.role, "news", "people.csv", sample, false)
			if r.status != fiber.StatusSeeOther || !strings.HasPrefix(r.header.Get("Location"), "/admin/imports/") {
				t.Fatalf("upload: %d %q\n%s", r.status, r.header.Get("Location"), r.body)
			}
			page := e.finish(t, r.header.Get("Location"), tc.role)
			for id, want := range map[string]string{"count-imported": tc.imported, "count-pending": tc.pending,
				"count-rejected": itoa(len(tc.rejected))} {
				if got := textByID(t, page, id); got != want {
					t.Errorf("#%s = %q, want %q", id, got, want)
				}
			}
			var lines []string
			for _, row := range tableRows(t, page, "rejected") {
				lines = append(lines, row[0])
			}
			if !slices.Equal(lines, tc.rejected) {
				t.Errorf("rejected lines %v, want %v\n%s", lines, tc.rejected, page)
			}
			for _, want := range []string{"email: not an email address", "proof of consent needs both consented_at and consent_source",
				"consented_at: in the future"} {
				if !strings.Contains(page, want) {
					t.Errorf("result lacks the reason %q", want)
				}
			}
			if withdrawn := strings.Contains(page, "withdrawn"); withdrawn != (tc.role == preferences.RoleAdmin) {
				t.Errorf("the withdrawal is told: %v; want %v", withdrawn, tc.role == preferences.RoleAdmin)
			}
			// The good rows are in the store, the bad ones are not; the withdrawal stands.
			for addr, want := range map[string]string{"ana@example.org": preferences.SubConfirmed,
				"bob@example.org": preferences.SubPending, "carl@example.org": "absent", "dora@example.org": "absent",
				"known@example.org": preferences.SubUnsubscribed} {
				if got := e.status(t, addr, "news"); got != want {
					t.Errorf("%s is %s, want %s", addr, got, want)
				}
			}
			// Nobody was sent a confirmation: the box was not ticked.
			if st, _ := e.queue.Stats(context.Background()); st.Ready != 0 {
				t.Errorf("%d messages queued, want none", st.Ready)
			}
			// The imported event names the person who uploaded.
			evs, _, err := e.store.Ledger(context.Background(), preferences.LedgerQuery{Type: preferences.EventImported, Limit: 1000})
			if err != nil {
				t.Fatal(err)
			}
			if last := evs[len(evs)-1]; last.Actor != "user:u1 (u1@acme.test)" {
				t.Errorf("imported event's actor %q", last.Actor)
			}
			// The form lists the import among the person's recent ones; another person
			// cannot open it.
			if f := e.get(t, "/admin/imports", tc.role); !strings.Contains(f.body, r.header.Get("Location")) {
				t.Error("the form does not link the recent import")
			}
			req := httptest.NewRequest("GET", r.header.Get("Location"), nil)
			req.Header.Set("X-Test-User", "u2")
			if other := e.do(t, req, preferences.RoleAdmin); other.status != 404 {
				t.Errorf("another person opens the import: %d", other.status)
			}
		})
	}
}

func TestImportShowsProgressUntilItEnds(t *testing.T) {
	e := newEnv(t)
	e.gate = &gate{q: e.queue, open: make(chan struct{})}
	// Rebuild the pages over the closed gate.
	r, _ := templates.New(templates.Site{})
	pages, err := importpages.New(e.store, e.gate, r, templates.Site{}, time.Now)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pages.Close)
	t.Cleanup(e.gate.release) // before Close: a held import must end
	e.app = fiber.New(fiber.Config{Immutable: true})
	pages.Routes(e.app.Group("/admin", signedIn), webauthtest.Require)

	var csv strings.Builder
	csv.WriteString("email\n")
	for i := range 3000 {
		csv.WriteString("person" + itoa(i) + "@example.org\n")
	}
	up := e.upload(t, preferences.RoleMarketer, "offers", "big.csv", csv.String(), true)
	loc := up.header.Get("Location")
	if up.status != fiber.StatusSeeOther {
		t.Fatalf("upload: %d", up.status)
	}
	page := e.get(t, loc, preferences.RoleMarketer)
	for _, want := range []string{`<progress id="import-bar" max="100"`, `hx-get="` + loc + `/progress"`, `hx-trigger="every 1s"`,
		`href="` + loc + `">Reload`} {
		if !strings.Contains(page.body, want) {
			t.Errorf("running import's page lacks %q", want)
		}
	}
	if frag := e.get(t, loc+"/progress", preferences.RoleMarketer); frag.header.Get("HX-Redirect") != "" ||
		strings.Contains(frag.body, "<html") || !strings.Contains(frag.body, "<progress") {
		t.Errorf("progress fragment while running: %v\n%s", frag.header, frag.body)
	}
	// A third import is refused while two run; a second is accepted.
	if second := e.upload(t, preferences.RoleMarketer, "offers", "b.csv", "email\nx@example.org\n", true); second.status != fiber.StatusSeeOther {
		t.Fatalf("second upload: %d", second.status)
	}
	if third := e.upload(t, preferences.RoleMarketer, "offers", "c.csv", "email\ny@example.org\n", true); third.status != fiber.StatusServiceUnavailable ||
		!strings.Contains(third.body, "Other imports are running") {
		t.Errorf("third upload while two run: %d", third.status)
	}
	e.gate.release()
	result := e.finish(t, loc, preferences.RoleMarketer)
	if got := textByID(t, result, "count-pending"); got != "3,000" {
		t.Errorf("pending %q, want 3,000", got)
	}
	if st, _ := e.queue.Stats(context.Background()); st.Ready < 3000 {
		t.Errorf("%d confirmations queued, want 3000 or more", st.Ready)
	}
}

func TestImportFormRefusesWhatTheAPIRefuses(t *testing.T) {
	e := newEnv(t)
	for _, role := range []string{preferences.RoleViewer, preferences.RoleDPO} {
		if r := e.get(t, "/admin/imports", role); r.status != 403 {
			t.Errorf("%s opens the form: %d", role, r.status)
		}
		if r := e.upload(t, role, "news", "a.csv", "email\na@example.org\n", false); r.status != 403 {
			t.Errorf("%s imports: %d", role, r.status)
		}
	}
	if _, ok := e.store.LookupEmail(context.Background(), "a@example.org"); ok {
		t.Error("a refused import stored its row")
	}
	// Errors next to their fields, what was chosen kept.
	r := e.upload(t, preferences.RoleMarketer, "", "", "", false)
	if r.status != fiber.StatusUnprocessableEntity || !strings.Contains(r.body, `id="list-error"`) || !strings.Contains(r.body, `id="file-error"`) {
		t.Errorf("empty form: %d\n%s", r.status, r.body)
	}
	if strings.Contains(r.body, `name="send_optin" value="true" checked`) {
		t.Error("the unticked box came back ticked")
	}
	r = e.upload(t, preferences.RoleMarketer, "offers", "empty.csv", "", true)
	if r.status != fiber.StatusUnprocessableEntity || !strings.Contains(r.body, "The file is empty.") ||
		!strings.Contains(r.body, `value="offers" selected`) {
		t.Errorf("empty file: %d\n%s", r.status, r.body)
	}
	// A header the importer refuses: the import page says why, in the API's words.
	r = e.upload(t, preferences.RoleMarketer, "news", "bad.csv", "name\nAna\n", false)
	page := e.finish(t, r.header.Get("Location"), preferences.RoleMarketer)
	if got := textByID(t, page, "import-error"); !strings.Contains(got, "line 1: no email column") {
		t.Errorf("header error %q", got)
	}
	// In French.
	req := httptest.NewRequest("GET", "/admin/imports?lang=fr", nil)
	if fr := e.do(t, req, preferences.RoleAdmin); !strings.Contains(fr.body, "Envoyer un e-mail de confirmation") {
		t.Errorf("French form:\n%s", fr.body)
	}
}
