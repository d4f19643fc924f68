package overview_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/gofiber/fiber/v2"

	"consentmail/preferences"
	"consentmail/preferences/internal/preftest"
	"consentmail/preferences/overview"
	"consentmail/preferences/webauth"
	"consentmail/preferences/webauth/webauthtest"
	"consentmail/templates"
	"consentmail/templates/browsertest"
)

// serve runs the overview on a real listener, with the static files and the
// Content-Security-Policy of cmd, for a signed-in person of role; it returns its URL.
func serve(tb testing.TB, e *env, role string) string {
	tb.Helper()
	r, err := templates.New(templates.Site{Company: "Acme"})
	if err != nil {
		tb.Fatal(err)
	}
	page, err := overview.New(e.store.Store, r, templates.Site{Company: "Acme"},
		func(_ context.Context, limit int) ([]overview.Campaign, error) {
			return e.campaigns[:min(limit, len(e.campaigns))], nil
		},
		func(context.Context) (overview.Queue, error) {
			return overview.Queue{Ready: 1234, Inflight: 5, Dead: 2}, nil
		},
		func(context.Context) (overview.Deliverability, error) { return e.checks, nil })
	if err != nil {
		tb.Fatal(err)
	}
	return webauthtest.Serve(tb, func(c *fiber.Ctx) error {
		webauth.With(c, webauth.Session{UserID: "u1", Email: "m@acme.test", Role: role, CSRF: "t", Lang: c.Query("lang", "en")})
		return c.Next()
	}, page.Routes)
}

// seedMonth fills 30 days of sign-ups from several sources, most confirmed, a few
// withdrawn, through the domain functions.
func seedMonth(tb testing.TB, s *preftest.Store) {
	tb.Helper()
	preftest.CreateList(tb, s, "news")
	sources := []string{"homepage", "blog", "footer", "webinar-2026", "homepage", ""}
	for d := range overview.Days {
		for i := range 2 + (d*7)%6 {
			in := preftest.SignupInput(fmt.Sprintf("p%d-%d@example.org", d, i), "news")
			in.Source = sources[(d+i)%len(sources)]
			req := preftest.Signup(tb, s, in)
			if (d+i)%3 != 0 {
				preftest.Confirm(tb, s, req)
			}
			if i == 0 && d%5 == 4 {
				if _, err := s.Unsubscribe(context.Background(), preferences.UnsubscribeInput{Subscriber: req.Subscriber,
					Method: "link"}); err != nil {
					tb.Fatal(err)
				}
			}
		}
		s.Clock.Advance(24 * time.Hour)
	}
}

func TestOverviewInTheBrowser(t *testing.T) {
	e := newEnv(t)
	seedMonth(t, e.store)
	started := preftest.Epoch.Add(20 * 24 * time.Hour)
	e.campaigns = []overview.Campaign{
		{ID: "cmp_3", Name: "December newsletter", Status: "running", Started: started.Add(9 * 24 * time.Hour), Sent: 4210, Opens: 1502, Clicks: 311, Bounced: 21, Complained: 1, Unsubscribed: 9},
		{ID: "cmp_2", Name: "Webinar invitation", Status: "finished", Started: started, Sent: 12873, Opens: 5120, Clicks: 1204, Bounced: 88, Complained: 4, Unsubscribed: 31},
		{ID: "cmp_1", Name: "Spring sale", Status: "draft"},
	}
	e.checks = overview.Deliverability{CheckedAt: started, Warnings: []overview.Warning{
		{Status: "fail", Check: "dmarc", Subject: "acme.test", Message: "acme.test has no DMARC record", Fix: "publish a TXT record at _dmarc.acme.test such as v=DMARC1; p=quarantine"},
		{Status: "warn", Check: "ptr", Subject: "192.0.2.10", Message: "192.0.2.10 has no reverse DNS name", Fix: "ask your hosting provider for a PTR record"}}}
	url := serve(t, e, preferences.RoleAdmin)

	b := browsertest.New(t, 1280, 900)
	ctx := b.Tab(t)
	if status := browsertest.Open(t, ctx, url+"/admin"); status != 200 {
		t.Fatalf("GET /admin: %d", status)
	}
	if h := browsertest.Heading(t, ctx); h != "Overview" {
		t.Errorf("h1 %q", h)
	}
	// The chart's numbers open with the keyboard.
	browsertest.Do(t, ctx, "open the numbers", chromedp.Focus(chromedp.CSS("details.chart-data summary")),
		chromedp.KeyEvent("\r"))
	open := browsertest.Value(t, ctx, "details open", chromedp.Evaluate[bool](`document.querySelector("details.chart-data").open`))
	if !open {
		t.Error("Enter on the summary does not open the chart's table")
	}
	browsertest.Do(t, ctx, "close the numbers", chromedp.KeyEvent("\r"),
		chromedp.Evaluate[chromedp.Void](`document.activeElement.blur()`))
	browsertest.Axe(t, ctx, "overview")
	browsertest.Shot(t, ctx, "admin-overview")

	phone := b.Tab(t)
	browsertest.Do(t, phone, "phone width", chromedp.EmulateViewport(390, 844))
	browsertest.Open(t, phone, url+"/admin?lang=fr")
	if h := browsertest.Heading(t, phone); h != "Vue d’ensemble" {
		t.Errorf("French h1 %q", h)
	}
	overflow := browsertest.Value(t, phone, "page width", chromedp.Evaluate[bool](
		`document.documentElement.scrollWidth > window.innerWidth`))
	if overflow {
		t.Error("the overview is wider than a phone's screen")
	}
	browsertest.Axe(t, phone, "overview (phone, French)")
	browsertest.Shot(t, phone, "admin-overview-phone")
}
