package importpages_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/gofiber/fiber/v2"

	"consentmail/optin/importpages"
	"consentmail/preferences"
	"consentmail/preferences/webauth"
	"consentmail/preferences/webauth/webauthtest"
	"consentmail/templates"
	"consentmail/templates/browsertest"
)

// serve runs the Imports pages over e's store on a real listener, with the static
// files (htmx among them) and cmd's Content-Security-Policy, for a marketer; the
// confirmations pass through g.
func serve(tb testing.TB, e *env, g *gate) string {
	tb.Helper()
	r, err := templates.New(templates.Site{Company: "Acme"})
	if err != nil {
		tb.Fatal(err)
	}
	pages, err := importpages.New(e.store, g, r, templates.Site{Company: "Acme"}, time.Now)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(pages.Close)
	tb.Cleanup(g.release) // runs before Close: a held import must end
	return webauthtest.Serve(tb, func(c *fiber.Ctx) error {
		webauth.With(c, webauth.Session{UserID: "u1", Email: "m@acme.test", Role: preferences.RoleMarketer, CSRF: "t",
			Lang: c.Query("lang", "en")})
		return c.Next()
	}, pages.Routes)
}

func TestImportInTheBrowser(t *testing.T) {
	e := newEnv(t)
	g := &gate{q: e.queue, open: make(chan struct{})} // closed: the import waits until the test opens it
	url := serve(t, e, g)
	var csv strings.Builder
	csv.WriteString("email,name,consented_at,consent_source,plan\n")
	for i := range 40 {
		csv.WriteString("person" + itoa(i) + "@example.org,Person " + itoa(i) + ",2025-11-02,checkout page,gold\n")
	}
	csv.WriteString("newcomer@example.org,Newcomer,,,\n")     // 42: no proof: pending, sent a confirmation
	csv.WriteString("not-an-address,Nobody,,,\n")             // 43
	csv.WriteString("half@example.org,Half,2025-11-02,,\n")   // 44
	csv.WriteString("ip@example.org,Later,2031-01-01,web,\n") // 45
	file := filepath.Join(t.TempDir(), "customers.csv")
	if err := os.WriteFile(file, []byte(csv.String()), 0o600); err != nil {
		t.Fatal(err)
	}

	b := browsertest.New(t, 1280, 900)
	ctx := b.Tab(t)
	if status := browsertest.Open(t, ctx, url+"/admin/imports"); status != 200 {
		t.Fatalf("GET /admin/imports: %d", status)
	}
	browsertest.Axe(t, ctx, "imports")
	browsertest.Shot(t, ctx, "admin-imports")

	// Submitting without a list keeps the file field's error next to it.
	browsertest.Do(t, ctx, "choose the file", chromedp.SetUploadFiles(chromedp.CSS("#file"), []string{file}))
	if status := browsertest.Submit(t, ctx, "form.import-form button[type=submit]"); status != 422 {
		t.Fatalf("upload without a list: %d", status)
	}
	if got := browsertest.Attr(t, ctx, "#list", "aria-invalid"); got.Value != "true" {
		t.Errorf("list field not marked invalid: %+v", got)
	}
	browsertest.Axe(t, ctx, "imports with errors")

	browsertest.Do(t, ctx, "fill the form", chromedp.SetValue(chromedp.CSS("#list"), "news"),
		chromedp.SetUploadFiles(chromedp.CSS("#file"), []string{file}))
	if status := browsertest.Submit(t, ctx, "form.import-form button[type=submit]"); status != 200 {
		t.Fatalf("upload: %d", status)
	}
	// The import waits for the gate: its page shows the progress, which htmx polls.
	browsertest.Do(t, ctx, "see the progress", chromedp.WaitVisible(chromedp.CSS("progress#import-bar")))
	if h := browsertest.Heading(t, ctx); h != "Importing customers.csv" {
		t.Errorf("h1 while running %q", h)
	}
	browsertest.Axe(t, ctx, "import running")
	g.release()
	// htmx's next poll learns that the import ended and loads the result.
	browsertest.Do(t, ctx, "wait for the result", chromedp.WaitVisible(chromedp.CSS("#count-imported")))
	if h := browsertest.Heading(t, ctx); h != "Import of customers.csv" {
		t.Errorf("h1 of the result %q", h)
	}
	counts := map[string]string{}
	for _, id := range []string{"count-imported", "count-pending", "count-rejected"} {
		counts[id] = strings.TrimSpace(browsertest.Value(t, ctx, "read "+id, chromedp.Text(chromedp.CSS("#"+id))))
	}
	if counts["count-imported"] != "40" || counts["count-pending"] != "1" || counts["count-rejected"] != "3" {
		t.Errorf("counts %v, want 40 imported, 1 pending, 3 rejected", counts)
	}
	lines := browsertest.Value(t, ctx, "rejected lines", chromedp.Evaluate[[]string](
		`[...document.querySelectorAll("#rejected tbody tr td:first-child")].map(td => td.textContent)`))
	if strings.Join(lines, ",") != "43,44,45" {
		t.Errorf("rejected lines %v, want 43, 44, 45", lines)
	}
	browsertest.Axe(t, ctx, "import result")
	browsertest.Shot(t, ctx, "admin-import-result")

	// The form now lists the import; at phone width nothing is wider than the screen.
	phone := b.Tab(t)
	browsertest.Do(t, phone, "phone width", chromedp.EmulateViewport(390, 844))
	browsertest.Open(t, phone, url+"/admin/imports?lang=fr")
	if wide := browsertest.Value(t, phone, "page width", chromedp.Evaluate[bool](
		`document.documentElement.scrollWidth > window.innerWidth`)); wide {
		t.Error("the imports page is wider than a phone's screen")
	}
	browsertest.Axe(t, phone, "imports (phone, French)")
	browsertest.Shot(t, phone, "admin-imports-phone")
}
