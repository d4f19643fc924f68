package main

import (
	"bytes"
	"context"
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
