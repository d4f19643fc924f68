package main

import (
	"bytes"
	"encoding/json"
	"net/http"
	"strings"
	"testing"

	"consentmail/mailer/smtptest"
	"consentmail/templates/browsertest"
)

// TestWrongMethodAndUnknownPaths calls the server run() starts: a known path with a
// method it does not serve answers 405 with Allow, an unknown path 404; people's pages
// answer an HTML page in their language, the API its JSON error shape.
func TestWrongMethodAndUnknownPaths(t *testing.T) {
	sink := smtptest.New(t)
	srv := startServer(t, serveEnv(t.TempDir(), sink.URL()), "serve")
	c := newClient(t, srv.BaseURL)
	for _, tc := range []struct {
		name, method, path, lang string
		status                   int
		allow                    string
		code                     string // the API's error code; empty: an HTML page
		heading                  string
	}{
		{"API, wrong method", "PUT", "/api/v1/lists", "fr", 405, "GET, HEAD, POST", "method_not_allowed", ""},
		{"API item, wrong method", "POST", "/api/v1/lists/news", "", 405, "DELETE, GET, HEAD, PATCH", "method_not_allowed", ""},
		{"API, unknown path", "GET", "/api/v1/nothing", "fr", 404, "", "not_found", ""},
		{"API, unknown below a known path", "GET", "/api/v1/lists/news/nothing", "", 404, "", "not_found", ""},
		{"page, wrong method, French", "DELETE", "/confirm/abc", "fr-FR,fr;q=0.9", 405, "GET, HEAD, POST", "", "Action impossible sur cette page"},
		{"page, wrong method, English", "PUT", "/subscribe/news", "en", 405, "GET, HEAD, POST", "", "This page cannot do that"},
		{"page, unknown path, English", "GET", "/nothing/here", "en-US,en;q=0.9", 404, "", "", "Page not found"},
		{"page, unknown path, French", "GET", "/nothing/here", "fr-CA,fr;q=0.9", 404, "", "", "Page introuvable"},
		{"admin, unknown path", "GET", "/admin/nothing", "fr", 404, "", "", "Page introuvable"},
		{"webhook not configured", "POST", "/webhooks/ses", "fr", 404, "", "not_found", ""},
		{"tracking, wrong method", "POST", "/t/o/token", "fr", 405, "GET, HEAD", "method_not_allowed", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			req, err := http.NewRequest(tc.method, srv.BaseURL+tc.path, nil)
			if err != nil {
				t.Fatal(err)
			}
			if tc.lang != "" {
				req.Header.Set("Accept-Language", tc.lang)
			}
			res, err := c.http.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer res.Body.Close()
			var body bytes.Buffer
			if _, err := body.ReadFrom(res.Body); err != nil {
				t.Fatal(err)
			}
			if res.StatusCode != tc.status {
				t.Errorf("%s %s: status %d, want %d\n%s", tc.method, tc.path, res.StatusCode, tc.status, body.String())
			}
			if got := res.Header.Get("Allow"); got != tc.allow {
				t.Errorf("Allow %q, want %q", got, tc.allow)
			}
			ct := res.Header.Get("Content-Type")
			if tc.code != "" {
				var e struct {
					Error struct{ Code, Message string } `json:"error"`
				}
				if !strings.HasPrefix(ct, "application/json") || json.Unmarshal(body.Bytes(), &e) != nil || e.Error.Code != tc.code || e.Error.Message == "" {
					t.Errorf("content type %q, body %s; want the JSON error shape with code %q", ct, body.String(), tc.code)
				}
				return
			}
			if !strings.HasPrefix(ct, "text/html") || !strings.Contains(body.String(), "<h1>"+tc.heading+"</h1>") {
				t.Errorf("content type %q, body:\n%s\nwant an HTML page headed %q", ct, body.String(), tc.heading)
			}
			if csp := res.Header.Get("Content-Security-Policy"); !strings.Contains(csp, "default-src 'none'") {
				t.Errorf("CSP %q, want the pages' strict policy", csp)
			}
		})
	}
}

func TestRouteMatches(t *testing.T) {
	for _, tc := range []struct {
		pattern, path string
		want          bool
	}{
		{"/", "/", true},
		{"/", "/x", false},
		{"/api/v1/lists", "/api/v1/lists", true},
		{"/api/v1/lists", "/API/V1/Lists/", true},
		{"/api/v1/lists", "/api/v1/lists/x", false},
		{"/api/v1/lists/:id", "/api/v1/lists/news", true},
		{"/api/v1/lists/:id", "/api/v1/lists", false},
		{"/api/v1/lists/:id", "/api/v1/lists//", false},
		{"/api/v1/lists/:id/imports", "/api/v1/lists/news/imports", true},
		{"/api/v1/lists/:id/imports", "/api/v1/lists/news/exports", false},
		{"/files/:name?", "/files", true},
		{"/files/:name?", "/files/a", true},
		{"/files/:name?", "/files/a/b", false},
		{"/static/*", "/static/a/b.css", true},
		{"/static/*", "/static", true},
		{"/dl/+", "/dl", false},
		{"/dl/+", "/dl/a/b", true},
	} {
		if got := routeMatches(tc.pattern, tc.path); got != tc.want {
			t.Errorf("routeMatches(%q, %q) = %v, want %v", tc.pattern, tc.path, got, tc.want)
		}
	}
}

// TestErrorPagesInBrowser opens error pages in Chromium, desktop and phone: they are
// the subscriber pages' style, in the person's language, and pass axe.
func TestErrorPagesInBrowser(t *testing.T) {
	sink := smtptest.New(t)
	srv := startServer(t, serveEnv(t.TempDir(), sink.URL()), "serve")
	for _, tc := range []struct {
		name, lang, path, heading string
		width, height             int
		status                    int64
	}{
		{"error-404-en", "en-GB", "/nothing/here", "Page not found", 1280, 800, 404},
		{"error-404-fr", "fr-FR", "/nothing/here", "Page introuvable", 1280, 800, 404},
		{"error-404-fr-phone", "fr-FR", "/subscribe/nothing", "Page introuvable", 390, 844, 404},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b := browsertest.New(t, tc.width, tc.height)
			ctx := b.Tab(t)
			setAcceptLanguage(t, ctx, tc.lang)
			if st := browsertest.Open(t, ctx, srv.BaseURL+tc.path); st != tc.status {
				t.Errorf("GET %s: %d, want %d", tc.path, st, tc.status)
			}
			if h := browsertest.Heading(t, ctx); h != tc.heading {
				t.Errorf("heading %q, want %q", h, tc.heading)
			}
			browsertest.Axe(t, ctx, tc.name)
			browsertest.Shot(t, ctx, tc.name)
		})
	}
}
