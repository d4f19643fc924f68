package httperr_test

import (
	"errors"
	"io"
	"log/slog"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/gofiber/fiber/v2"

	"consentmail/preferences/httperr"
	"consentmail/templates"
)

func pageApp(t *testing.T) *fiber.App {
	t.Helper()
	pages, err := templates.New(templates.Site{Company: "Acme"})
	if err != nil {
		t.Fatal(err)
	}
	app := fiber.New(fiber.Config{ErrorHandler: httperr.PageHandler(slog.New(slog.DiscardHandler), pages)})
	fail := func(c *fiber.Ctx) error { return errors.New("disk on fire at /var/lib/secret") }
	limited := func(c *fiber.Ctx) error {
		c.Set(fiber.HeaderRetryAfter, "7")
		return httperr.New(fiber.StatusTooManyRequests, "rate_limited", "slow down")
	}
	for _, p := range []string{"/api/v1/boom", "/boom"} {
		app.Get(p, fail)
	}
	for _, p := range []string{"/api/v1/limited", "/limited"} {
		app.Get(p, limited)
	}
	app.Use(func(c *fiber.Ctx) error { return httperr.NotFound("route") })
	return app
}

func TestErrorsOnPeoplesPagesArePages(t *testing.T) {
	app := pageApp(t)
	for _, tc := range []struct {
		name, path, lang string
		status           int
		html             bool
		want, not        []string
	}{
		{"unknown page, English", "/nowhere", "en-GB,en;q=0.8", 404, true, []string{`<html lang="en">`, "<h1>Page not found</h1>", "Acme"}, []string{"not_found"}},
		{"unknown page, French", "/nowhere", "fr-FR,fr;q=0.9,en;q=0.5", 404, true, []string{`<html lang="fr">`, "<h1>Page introuvable</h1>"}, []string{"not_found"}},
		{"admin page", "/admin/nowhere", "fr", 404, true, []string{"<h1>Page introuvable</h1>"}, nil},
		{"internal error", "/boom", "fr", 500, true, []string{"<h1>Une erreur s’est produite</h1>"}, []string{"disk", "secret", "internal"}},
		{"rate limited", "/limited", "en", 429, true, []string{"<h1>Too many attempts</h1>"}, []string{"slow down"}},
		{"API path", "/api/v1/nowhere", "fr", 404, false, []string{`{"error":{"code":"not_found"`}, nil},
		{"API error", "/api/v1/boom", "fr", 500, false, []string{`{"error":{"code":"internal","message":"internal error"}}`}, []string{"disk"}},
		{"API rate limit", "/api/v1/limited", "fr", 429, false, []string{`"code":"rate_limited"`}, nil},
		{"tracking link", "/t/o/x", "fr", 404, false, []string{`"code":"not_found"`}, nil},
		{"webhook", "/webhooks/nope", "fr", 404, false, []string{`"code":"not_found"`}, nil},
		{"health", "/healthz/", "fr", 404, false, []string{`"code":"not_found"`}, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			req := httptest.NewRequest("GET", tc.path, nil)
			req.Header.Set("Accept-Language", tc.lang)
			res, err := app.Test(req)
			if err != nil {
				t.Fatal(err)
			}
			b, _ := io.ReadAll(res.Body)
			body := string(b)
			ct := res.Header.Get("Content-Type")
			if res.StatusCode != tc.status {
				t.Errorf("status %d, want %d", res.StatusCode, tc.status)
			}
			if isHTML := strings.HasPrefix(ct, "text/html"); isHTML != tc.html {
				t.Errorf("content type %q, want HTML: %v\n%s", ct, tc.html, body)
			}
			for _, w := range tc.want {
				if !strings.Contains(body, w) {
					t.Errorf("body has no %q:\n%s", w, body)
				}
			}
			for _, n := range tc.not {
				if strings.Contains(body, n) {
					t.Errorf("body shows %q:\n%s", n, body)
				}
			}
			if tc.status == 429 && res.Header.Get("Retry-After") != "7" {
				t.Errorf("Retry-After %q, want 7", res.Header.Get("Retry-After"))
			}
		})
	}
}

func TestForBrowser(t *testing.T) {
	for path, want := range map[string]bool{
		"/": true, "/u/abc": true, "/p/abc/erase": true, "/subscribe/news": true, "/admin/": true, "/apix": true,
		"/api/v1/lists": false, "/API/v1/lists": false, "/api": false, "/webhooks/ses": false, "/t/c/x": false,
		"/metrics": false, "/healthz": false, "/readyz/": false,
	} {
		if got := httperr.ForBrowser(path); got != want {
			t.Errorf("ForBrowser(%q) = %v, want %v", path, got, want)
		}
	}
}
