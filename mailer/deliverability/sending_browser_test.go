package deliverability_test

import (
	"strings"
	"testing"

	"github.com/chromedp/chromedp"
	"github.com/gofiber/fiber/v2"
	"github.com/miekg/dns"

	"consentmail/preferences/webauth"
	"consentmail/preferences/webauth/webauthtest"
	"consentmail/templates/browsertest"
)

// serve runs e's page on a real listener as cmd mounts it, signed in as an admin.
func (e *sendingEnv) serve(tb testing.TB) string {
	tb.Helper()
	return webauthtest.Serve(tb, func(c *fiber.Ctx) error {
		webauth.With(c, webauth.Session{UserID: "u1", Email: "a@acme.test", Role: "admin", CSRF: "t", Lang: c.Query("lang", "en")})
		return c.Next()
	}, e.page.Routes)
}

func TestSendingPageInTheBrowser(t *testing.T) {
	e := newSendingEnv(t)
	e.dns.Remove("_dmarc.good.test", dns.TypeTXT)
	url := e.serve(t)
	b := browsertest.New(t, 1280, 900)
	ctx := b.Tab(t)
	if status := browsertest.Open(t, ctx, url+"/admin/settings/sending"); status != 200 {
		t.Fatalf("GET: %d", status)
	}
	browsertest.Axe(t, ctx, "settings sending")
	// The button, reached with the keyboard, runs the check and comes back to it.
	browsertest.Do(t, ctx, "focus the button", chromedp.Focus(chromedp.CSS(`#check button[type=submit]`)))
	res, err := chromedp.RunResponse(ctx, chromedp.KeyEvent("\r"))
	if err != nil || res.Status != 200 {
		t.Fatalf("run the check: %v %v", res, err)
	}
	browsertest.Do(t, ctx, "wait for the findings", chromedp.WaitVisible(chromedp.CSS("#findings")))
	fails := browsertest.Value(t, ctx, "failed checks", chromedp.Evaluate[[]string](
		`[...document.querySelectorAll("#findings tbody tr")].filter(tr => tr.querySelector(".badge.bad")).map(tr => tr.querySelector("th").textContent)`))
	if len(fails) != 1 || !strings.HasPrefix(fails[0], "dmarc") {
		t.Errorf("failed checks %q, want dmarc only", fails)
	}
	browsertest.Axe(t, ctx, "settings sending with findings")
	browsertest.Shot(t, ctx, "admin-settings-sending")

	phone := b.Tab(t)
	browsertest.Do(t, phone, "phone width", chromedp.EmulateViewport(390, 844))
	browsertest.Open(t, phone, url+"/admin/settings/sending?lang=fr")
	if wide := browsertest.Value(t, phone, "page width", chromedp.Evaluate[bool](
		`document.documentElement.scrollWidth > window.innerWidth`)); wide {
		culprits := browsertest.Value(t, phone, "wide elements", chromedp.Evaluate[[]string](
			`[...document.querySelectorAll("body *")].filter(e => e.getBoundingClientRect().right > window.innerWidth + 1 && !e.closest(".table-wrap")).map(e => e.tagName + "." + e.className + " " + Math.round(e.getBoundingClientRect().right))`))
		t.Errorf("the page is wider than a phone's screen: %q", culprits)
	}
	browsertest.Axe(t, phone, "settings sending (phone, French)")
	browsertest.Shot(t, phone, "admin-settings-sending-phone")
}
