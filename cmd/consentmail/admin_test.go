package main

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"regexp"
	"strings"
	"testing"

	"consentmail/mailer/smtptest"
)

// The admin app is mounted: /admin without a session is sent to the sign-in page,
// with the admin app's own CSP.
func TestAdminNeedsSignIn(t *testing.T) {
	sink := smtptest.New(t)
	srv := startServer(t, serveEnv(t.TempDir(), sink.URL()), "serve")
	c := newClient(t, srv.BaseURL)
	for _, path := range []string{"/admin", "/admin/settings/users"} {
		req, _ := http.NewRequest("GET", srv.BaseURL+path, nil)
		res, err := c.http.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
		if want := "/admin/signin?next=" + url.QueryEscape(path); res.StatusCode != http.StatusSeeOther || res.Header.Get("Location") != want {
			t.Errorf("GET %s: %d to %q, want 303 to %q", path, res.StatusCode, res.Header.Get("Location"), want)
		}
	}
	req, _ := http.NewRequest("GET", srv.BaseURL+"/admin/signin", nil)
	res, err := c.http.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if csp := res.Header.Get("Content-Security-Policy"); res.StatusCode != 200 || !strings.Contains(csp, "script-src 'self'") ||
		!strings.Contains(csp, "frame-ancestors 'none'") || strings.Contains(csp, "unsafe-inline") {
		t.Fatalf("sign-in page: %d, CSP %q", res.StatusCode, csp)
	}
	if status, _ := c.do("POST", "/admin/signin", "application/x-www-form-urlencoded", "email=a%40example.org&password=x"); status != http.StatusForbidden {
		t.Fatalf("sign-in without the form's token: %d, want 403", status)
	}
}

var csrfField = regexp.MustCompile(`name="_csrf" value="([^"]+)"`)

// browserClient is an HTTP client with cookies that does not follow redirects.
func browserClient(tb testing.TB) *http.Client {
	jar, _ := cookiejar.New(nil)
	return &http.Client{Jar: jar, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
}

func fetch(tb testing.TB, hc *http.Client, method, u string, form url.Values) (*http.Response, string) {
	tb.Helper()
	var body *strings.Reader
	if form != nil {
		body = strings.NewReader(form.Encode())
	} else {
		body = strings.NewReader("")
	}
	req, _ := http.NewRequest(method, u, body)
	if form != nil {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	res, err := hc.Do(req)
	if err != nil {
		tb.Fatalf("%s %s: %v", method, u, err)
	}
	defer res.Body.Close()
	var b bytes.Buffer
	b.ReadFrom(res.Body)
	return res, b.String()
}

// The password `user create` prints signs in, and must be changed first.
func TestUserCreateCommandSignsIn(t *testing.T) {
	dir := t.TempDir()
	var out, errOut bytes.Buffer
	err := run(context.Background(), []string{"consentmail", "user", "create", "--email", "Ana@Example.org", "--role", "marketer"},
		[]string{"CONSENTMAIL_DATA_DIR=" + dir}, &out, &errOut)
	if err != nil {
		t.Fatalf("user create: %v\n%s", err, errOut.String())
	}
	password := strings.TrimSpace(out.String())
	if len(password) < 12 || !strings.Contains(errOut.String(), "shown once") {
		t.Fatalf("printed %q (stderr %q), want a one-time password", password, errOut.String())
	}
	out.Reset()
	if err := run(context.Background(), []string{"consentmail", "user", "list"}, []string{"CONSENTMAIL_DATA_DIR=" + dir}, &out, &errOut); err != nil ||
		!strings.Contains(out.String(), "Ana@example.org") || !strings.Contains(out.String(), "marketer") {
		t.Fatalf("user list: %v\n%s", err, out.String())
	}

	sink := smtptest.New(t)
	srv := startServer(t, serveEnv(dir, sink.URL()), "serve")
	// While the server holds the data directory, the command says what to use instead.
	err = run(context.Background(), []string{"consentmail", "user", "list"}, []string{"CONSENTMAIL_DATA_DIR=" + dir}, &out, &errOut)
	if err == nil || !strings.Contains(err.Error(), "Settings → Users") {
		t.Fatalf("user list while serving: %v", err)
	}
	hc := browserClient(t)
	_, page := fetch(t, hc, "GET", srv.BaseURL+"/admin/signin", nil)
	m := csrfField.FindStringSubmatch(page)
	if m == nil {
		t.Fatalf("no _csrf field on the sign-in page:\n%s", page)
	}
	res, _ := fetch(t, hc, "POST", srv.BaseURL+"/admin/signin", url.Values{"_csrf": {m[1]}, "email": {"ana@example.org"}, "password": {password}})
	if res.StatusCode != http.StatusSeeOther || res.Header.Get("Location") != "/admin" {
		t.Fatalf("sign-in: %d to %q, want 303 to /admin", res.StatusCode, res.Header.Get("Location"))
	}
	// The one-time password leads to the account page, whatever is asked for.
	res, _ = fetch(t, hc, "GET", srv.BaseURL+"/admin", nil)
	if res.StatusCode != http.StatusSeeOther || res.Header.Get("Location") != "/admin/account" {
		t.Fatalf("GET /admin after sign-in: %d to %q, want 303 to /admin/account", res.StatusCode, res.Header.Get("Location"))
	}
	res, page = fetch(t, hc, "GET", srv.BaseURL+"/admin/account", nil)
	if res.StatusCode != 200 || !strings.Contains(page, "one-time password") {
		t.Fatalf("account page: %d\n%s", res.StatusCode, page)
	}
}

// dev makes a first admin and prints how to sign in, with sample branding.
func TestDevMakesFirstAdmin(t *testing.T) {
	srv := startServer(t, map[string]string{"CONSENTMAIL_DATA_DIR": t.TempDir(), "CONSENTMAIL_HTTP_ADDR": "127.0.0.1:0",
		"CONSENTMAIL_DEV_SMTP_ADDR": "127.0.0.1:0", "CONSENTMAIL_LOG_LEVEL": "warn"}, "dev")
	password := srv.Stdout.waitFor(t, regexp.MustCompile(`as admin@example\.test with the one-time password (\S+)`), srv.done)
	hc := browserClient(t)
	_, page := fetch(t, hc, "GET", srv.BaseURL+"/admin/signin", nil)
	if !strings.Contains(page, devCompany) {
		t.Errorf("sign-in page without the sample company name")
	}
	m := csrfField.FindStringSubmatch(page)
	if m == nil {
		t.Fatal("no _csrf field on the sign-in page")
	}
	res, _ := fetch(t, hc, "POST", srv.BaseURL+"/admin/signin", url.Values{"_csrf": {m[1]}, "email": {"admin@example.test"}, "password": {password}})
	if res.StatusCode != http.StatusSeeOther {
		t.Fatalf("sign-in with the printed password: %d", res.StatusCode)
	}
	if _, css := fetch(t, hc, "GET", srv.BaseURL+"/static/brand.css", nil); !strings.Contains(css, devAccent) {
		t.Errorf("brand.css %q, want the sample accent", css)
	}
}

func TestAdminConfigurationErrors(t *testing.T) {
	base := map[string]string{"CONSENTMAIL_DATA_DIR": t.TempDir(), "CONSENTMAIL_HTTP_ADDR": "127.0.0.1:0",
		"CONSENTMAIL_SECRET": testSecret, "CONSENTMAIL_SMTP_URL": "smtp://127.0.0.1:2525?tls=none"}
	for _, tc := range []struct {
		name string
		set  map[string]string
		want string
	}{
		{"idle not a duration", map[string]string{"CONSENTMAIL_SESSION_IDLE": "soon"}, "CONSENTMAIL_SESSION_IDLE"},
		{"idle beyond max", map[string]string{"CONSENTMAIL_SESSION_IDLE": "13h"}, "longer than CONSENTMAIL_SESSION_MAX"},
		{"half of SSO", map[string]string{"CONSENTMAIL_OIDC_ISSUER": "https://id.example.org"}, "CONSENTMAIL_OIDC_CLIENT_SECRET"},
		{"SSO without roles", map[string]string{"CONSENTMAIL_OIDC_ISSUER": "https://id.example.org", "CONSENTMAIL_OIDC_CLIENT_ID": "cm",
			"CONSENTMAIL_OIDC_CLIENT_SECRET": "s"}, "CONSENTMAIL_OIDC_ROLES"},
		{"SSO with an unknown role", map[string]string{"CONSENTMAIL_OIDC_ISSUER": "https://id.example.org", "CONSENTMAIL_OIDC_CLIENT_ID": "cm",
			"CONSENTMAIL_OIDC_CLIENT_SECRET": "s", "CONSENTMAIL_OIDC_ROLES": "staff=boss"}, "staff=boss"},
		{"logo over http", map[string]string{"CONSENTMAIL_LOGO_URL": "http://cdn.example.org/logo.png"}, "CONSENTMAIL_LOGO_URL"},
		{"accent not a colour", map[string]string{"CONSENTMAIL_ACCENT_COLOR": "teal"}, "CONSENTMAIL_ACCENT_COLOR"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			env := map[string]string{}
			for k, v := range base {
				env[k] = v
			}
			for k, v := range tc.set {
				env[k] = v
			}
			err := run(context.Background(), []string{"consentmail", "serve"}, environ(env), io.Discard, io.Discard)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("got %v, want an error mentioning %q", err, tc.want)
			}
		})
	}
}
