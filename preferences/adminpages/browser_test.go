package adminpages_test

import (
	"context"
	"net/http"
	"strings"
	"testing"

	"github.com/chromedp/chromedp"
	"github.com/gofiber/fiber/v2"
	"github.com/gofiber/fiber/v2/middleware/filesystem"

	"consentmail/preferences"
	"consentmail/templates"
	"consentmail/templates/browsertest"
)

// serve runs the site on a loopback listener, with the static files, until the test
// ends, and returns its base URL.
func (st *site) serve(tb testing.TB) string {
	tb.Helper()
	st.app.Get("/static/brand.css", func(c *fiber.Ctx) error {
		c.Set(fiber.HeaderContentType, "text/css; charset=utf-8")
		return c.Send(templates.BrandCSS(templates.Site{}))
	})
	st.app.Use("/static", filesystem.New(filesystem.Config{Root: http.FS(templates.Static())}))
	return browsertest.Serve(tb, st.app)
}

// look opens u, checks its heading, runs axe and saves a screenshot.
func look(tb testing.TB, ctx context.Context, u, heading, shot string) {
	tb.Helper()
	if st := browsertest.Open(tb, ctx, u); st != 200 {
		tb.Fatalf("GET %s: status %d", u, st)
	}
	checkPage(tb, ctx, heading, shot)
}

func checkPage(tb testing.TB, ctx context.Context, heading, shot string) {
	tb.Helper()
	if h := browsertest.Heading(tb, ctx); !strings.Contains(h, heading) {
		tb.Errorf("heading %q, want it to contain %q", h, heading)
	}
	if shot != "" {
		browsertest.Shot(tb, ctx, shot)
	}
	browsertest.Axe(tb, ctx, shot)
}

// TestBrowserConsentBook walks the pages as an admin in headless Chromium: lists, a
// new list, its page and snippet, subscribers, a person, the DPO's ledger, its
// verification, the register, and an erasure's receipt; axe on every page.
func TestBrowserConsentBook(t *testing.T) {
	st := newSite(t)
	people := st.seed(t)
	base := st.serve(t)
	b := browsertest.New(t, 1280, 900)
	ctx := b.Tab(t)

	look(t, ctx, base+"/admin/lists", "Lists", "admin-lists")
	if st := browsertest.Submit(t, ctx, `a[href="/admin/lists/_new"]`); st != 200 {
		t.Fatalf("new list form: status %d", st)
	}
	browsertest.Do(t, ctx, "fill the new list",
		chromedp.SendKeys(chromedp.ID("id"), "offers"),
		chromedp.SendKeys(chromedp.ID("name"), "Special offers"),
		chromedp.SendKeys(chromedp.ID("purpose"), "Our discounts, twice a month."),
		chromedp.SendKeys(chromedp.ID("consent_text"), "Yes, send me special offers."),
		chromedp.SendKeys(chromedp.ID("privacy_url"), "https://acme.test/privacy"),
		chromedp.SendKeys(chromedp.ID("fr-name"), "Offres spéciales"),
		chromedp.SendKeys(chromedp.ID("fr-purpose"), "Nos remises, deux fois par mois."),
		chromedp.SendKeys(chromedp.ID("fr-consent_text"), "Oui, envoyez-moi les offres spéciales."),
	)
	checkPage(t, ctx, "New list", "")
	if st := browsertest.Submit(t, ctx, `form.book-form button[type=submit]`); st != 200 {
		t.Fatalf("create: status %d", st)
	}
	checkPage(t, ctx, "List: Special offers", "admin-list")
	snippet := browsertest.Value(t, ctx, "read the snippet", chromedp.Value(chromedp.ID("snippet-en")))
	for _, want := range []string{`action="` + baseURL + `/subscribe/offers/embedded"`, `name="website"`, `name="consent"`,
		"Yes, send me special offers."} {
		if !strings.Contains(snippet, want) {
			t.Errorf("snippet lacks %q:\n%s", want, snippet)
		}
	}
	look(t, ctx, base+"/admin/lists/weekly/edit", "Edit the list weekly", "admin-list-edit")

	look(t, ctx, base+"/admin/subscribers", "Subscribers", "admin-subscribers")
	if st := browsertest.Submit(t, ctx, `a[href="/admin/subscribers/`+people[0].id+`"]`); st != 200 {
		t.Fatalf("person page: status %d", st)
	}
	checkPage(t, ctx, "Subscriber a***@example.org", "admin-subscriber")

	look(t, ctx, base+"/admin/dpo", "Data protection", "")
	look(t, ctx, base+"/admin/dpo/ledger", "Consent ledger", "admin-dpo-ledger")
	if st := browsertest.Submit(t, ctx, `a[href="/admin/dpo/verify"]`); st != 200 {
		t.Fatalf("verify: status %d", st)
	}
	checkPage(t, ctx, "Ledger verification", "admin-dpo-verify")
	look(t, ctx, base+"/admin/dpo/register", "Register of processing activities", "admin-dpo-register")

	// Erase Ben from his page: the receipt shows.
	look(t, ctx, base+"/admin/subscribers/"+people[1].id, "Subscriber", "")
	browsertest.Do(t, ctx, "confirm the erasure", chromedp.SendKeys(chromedp.ID("confirm"), "ERASE"))
	if st := browsertest.Submit(t, ctx, `form[action$="/erase"] button`); st != 200 {
		t.Fatalf("erase: status %d", st)
	}
	checkPage(t, ctx, "Erased subscriber", "admin-dpo-erase-receipt")
	if got := st.events(t, people[1].id, preferences.EventErased); len(got) != 1 || got[0].Actor != actor {
		t.Errorf("erased events %+v, want one by %s", got, actor)
	}

	// A phone: Chromium's window is never narrower than 500 pixels, its viewport is.
	phone := b.Tab(t)
	browsertest.Do(t, phone, "phone viewport", chromedp.EmulateViewport(390, 844))
	look(t, phone, base+"/admin/subscribers/"+people[0].id, "Subscriber", "admin-subscriber-phone")
	look(t, phone, base+"/admin/lists/weekly", "List: Weekly news", "admin-list-phone")
	if w := browsertest.Value(t, phone, "page width", chromedp.Evaluate[int](`document.documentElement.scrollWidth`)); w > 390 {
		t.Errorf("the list page is %d pixels wide on a 390-pixel phone", w)
	}
}
