package webauth_test

import (
	"context"
	"log/slog"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/gofiber/fiber/v2"
	"github.com/oauth2-proxy/mockoidc"

	"consentmail/preferences"
	"consentmail/preferences/internal/preftest"
	"consentmail/preferences/webauth"
	"consentmail/templates"
)

// env is an admin app over a real store, with a clock the test moves.
type env struct {
	store *preftest.Store
	auth  *webauth.Auth
	app   *fiber.App
}

func newEnv(tb testing.TB, cfg webauth.Config) *env {
	tb.Helper()
	store := preftest.NewStore(tb)
	auth, err := webauth.New(store.Store, preftest.Templates(tb), templates.Site{Company: "Acme"}, cfg, store.Clock.Now, slog.New(slog.DiscardHandler))
	if err != nil {
		tb.Fatal(err)
	}
	app := preftest.NewApp(tb)
	admin := app.Group("/admin", auth.Middleware()...)
	auth.Routes(admin)
	admin.Get("/", auth.Require(), func(c *fiber.Ctx) error { return c.SendString("overview") })
	admin.Get("/dpo", auth.Require(preferences.RoleDPO), func(c *fiber.Ctx) error { return c.SendString("dpo desk") })
	admin.Post("/lists", auth.Require(preferences.RoleMarketer), func(c *fiber.Ctx) error {
		s, _ := webauth.Current(c)
		return c.SendString("saved by " + s.Email)
	})
	return &env{store: store, auth: auth, app: app}
}

// visitor is one browser: its cookies and its IP address.
type visitor struct {
	tb      testing.TB
	e       *env
	ip      string
	cookies map[string]string
}

func (e *env) visitor(tb testing.TB, ip string) *visitor {
	return &visitor{tb: tb, e: e, ip: ip, cookies: map[string]string{}}
}

type answer struct {
	status   int
	location string
	body     string
	header   http.Header
}

func (v *visitor) do(method, path string, form url.Values, header ...string) answer {
	v.tb.Helper()
	var req *http.Request
	if form != nil {
		req, _ = http.NewRequest(method, path, strings.NewReader(form.Encode()))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	} else {
		req, _ = http.NewRequest(method, path, nil)
	}
	req.Header.Set("X-Forwarded-For", v.ip)
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	for k, val := range v.cookies {
		req.AddCookie(&http.Cookie{Name: k, Value: val})
	}
	res, body := preftest.Do(v.tb, v.e.app, req)
	for _, c := range res.Cookies() {
		if c.MaxAge < 0 || c.Value == "" {
			delete(v.cookies, c.Name)
		} else {
			v.cookies[c.Name] = c.Value
		}
	}
	return answer{res.StatusCode, res.Header.Get("Location"), string(body), res.Header}
}

var csrfField = regexp.MustCompile(`name="_csrf" value="([^"]+)"`)

// csrf reads the form token of the page at path.
func (v *visitor) csrf(path string) string {
	v.tb.Helper()
	a := v.do("GET", path, nil)
	m := csrfField.FindStringSubmatch(a.body)
	if m == nil {
		v.tb.Fatalf("GET %s: %d, no _csrf field:\n%s", path, a.status, a.body)
	}
	return m[1]
}

// post sends a form with the token of the page at from.
func (v *visitor) post(from, path string, form url.Values) answer {
	v.tb.Helper()
	form.Set("_csrf", v.csrf(from))
	return v.do("POST", path, form)
}

func (v *visitor) signin(email, password string) answer {
	v.tb.Helper()
	return v.post("/admin/signin", "/admin/signin", url.Values{"email": {email}, "password": {password}})
}

// user makes a user whose password is chosen (not one-time any more).
func (e *env) user(tb testing.TB, email, role string) (preferences.User, string) {
	tb.Helper()
	ctx := context.Background()
	u, once, err := e.store.CreateUser(ctx, email, role)
	if err != nil {
		tb.Fatal(err)
	}
	password := "correct horse battery " + role
	if err := e.store.ChangePassword(ctx, u.ID, once, password, ""); err != nil {
		tb.Fatal(err)
	}
	return u, password
}

func expect(tb testing.TB, what string, got answer, status int, location string) {
	tb.Helper()
	if got.status != status || (location != "" && got.location != location) {
		tb.Fatalf("%s: got %d to %q, want %d to %q\n%s", what, got.status, got.location, status, location, got.body)
	}
}

func TestSignInAndCSRF(t *testing.T) {
	e := newEnv(t, webauth.Config{})
	e.user(t, "mara@example.org", preferences.RoleMarketer)
	v := e.visitor(t, "192.0.2.10")
	expect(t, "overview without a session", v.do("GET", "/admin/", nil), 303, "/admin/signin?next=%2Fadmin%2F")
	expect(t, "a POST without a session", v.do("POST", "/admin/lists", url.Values{}), 403, "") // no token at all
	// The sign-in form is guarded by its double-submit cookie.
	v.csrf("/admin/signin")
	expect(t, "sign-in without the form's token", v.do("POST", "/admin/signin",
		url.Values{"email": {"mara@example.org"}, "password": {"correct horse battery marketer"}}), 403, "")
	expect(t, "sign-in with a forged token", v.do("POST", "/admin/signin",
		url.Values{"_csrf": {strings.Repeat("x", 43)}, "email": {"mara@example.org"}, "password": {"correct horse battery marketer"}}), 403, "")
	expect(t, "sign-in with a wrong password", v.signin("mara@example.org", "wrong password!"), 422, "")
	a := v.post("/admin/signin?next=/admin/lists", "/admin/signin?next=%2Fadmin%2Fdpo", url.Values{"email": {"Mara@Example.org"}, "password": {"correct horse battery marketer"}})
	expect(t, "sign-in", a, 303, "/admin/dpo")
	if c := a.header.Values("Set-Cookie"); !strings.Contains(strings.Join(c, "\n"), "cm_session=") ||
		!strings.Contains(strings.ToLower(strings.Join(c, "\n")), "httponly") || !strings.Contains(strings.Join(c, "\n"), "SameSite=Strict") ||
		!strings.Contains(strings.Join(c, "\n"), "path=/admin") {
		t.Fatalf("session cookie: %q", c)
	}
	expect(t, "a marketer on a dpo page", v.do("GET", "/admin/dpo", nil), 403, "")
	expect(t, "a marketer on settings", v.do("GET", "/admin/settings/users", nil), 403, "")
	expect(t, "a form without the session's token", v.do("POST", "/admin/lists", url.Values{}), 403, "")
	expect(t, "a form with another token", v.do("POST", "/admin/lists", url.Values{"_csrf": {strings.Repeat("A", 43)}}), 403, "")
	token := v.csrf("/admin/account")
	if a := v.do("POST", "/admin/lists", url.Values{"_csrf": {token}}); a.status != 200 || a.body != "saved by mara@example.org" {
		t.Fatalf("form with the token: %d %q", a.status, a.body)
	}
	if a := v.do("POST", "/admin/lists", nil, "X-CSRF-Token", token); a.status != 200 {
		t.Fatalf("htmx request with the header: %d %q", a.status, a.body)
	}
	// ?next= never leaves the admin app.
	v2 := e.visitor(t, "192.0.2.11")
	for _, next := range []string{"https://evil.example/admin", "//evil.example/admin", "/administrator", "/admin/../x"} {
		a := v2.post("/admin/signin", "/admin/signin?next="+url.QueryEscape(next), url.Values{"email": {"mara@example.org"}, "password": {"correct horse battery marketer"}})
		expect(t, "next="+next, a, 303, "/admin")
		v2 = e.visitor(t, "192.0.2.11")
	}
	// The auth log has the attempts, the unknown one without the address typed.
	e.visitor(t, "192.0.2.10").signin("nobody@example.org", "whatever it is")
	log, err := e.store.AuthLog(context.Background(), 100)
	if err != nil {
		t.Fatal(err)
	}
	if log[0].UserID != "" || log[0].EmailHash == "" || log[0].Outcome != preferences.AuthFailed || log[0].IP != "192.0.2.10" {
		t.Fatalf("last attempt logged as %+v", log[0])
	}
	var oks int
	for _, ev := range log {
		if ev.Outcome == preferences.AuthOK && ev.Email == "mara@example.org" {
			oks++
		}
	}
	if oks != 5 {
		t.Fatalf("%d successful sign-ins logged, want 5", oks)
	}
}

func TestSessionExpiryAndSignOut(t *testing.T) {
	e := newEnv(t, webauth.Config{Sessions: preferences.SessionPolicy{Idle: 30 * time.Minute, Max: 12 * time.Hour}})
	_, pw := e.user(t, "ines@example.org", preferences.RoleViewer)
	clock := e.store.Clock

	t.Run("idle", func(t *testing.T) {
		v := e.visitor(t, "192.0.2.20")
		expect(t, "sign-in", v.signin("ines@example.org", pw), 303, "/admin")
		for range 3 {
			clock.Advance(29 * time.Minute)
			expect(t, "a request within the idle time", v.do("GET", "/admin/", nil), 200, "")
		}
		clock.Advance(31 * time.Minute)
		expect(t, "after 31 idle minutes", v.do("GET", "/admin/", nil), 303, "/admin/signin?next=%2Fadmin%2F")
	})
	t.Run("absolute", func(t *testing.T) {
		v := e.visitor(t, "192.0.2.21")
		expect(t, "sign-in", v.signin("ines@example.org", pw), 303, "/admin")
		for elapsed := time.Duration(0); elapsed < 12*time.Hour-20*time.Minute; elapsed += 20 * time.Minute {
			clock.Advance(20 * time.Minute)
			expect(t, "a busy session", v.do("GET", "/admin/", nil), 200, "")
		}
		clock.Advance(20 * time.Minute)
		expect(t, "after 12 hours", v.do("GET", "/admin/", nil), 303, "")
	})
	t.Run("sign-out", func(t *testing.T) {
		v := e.visitor(t, "192.0.2.22")
		expect(t, "sign-in", v.signin("ines@example.org", pw), 303, "/admin")
		stolen := v.cookies[webauth.CookieSession]
		expect(t, "sign-out", v.post("/admin/account", "/admin/signout", url.Values{}), 303, "/admin/signin?m=out")
		if _, ok := v.cookies[webauth.CookieSession]; ok {
			t.Fatal("the session cookie was not cleared")
		}
		v.cookies[webauth.CookieSession] = stolen
		expect(t, "the old token after sign-out", v.do("GET", "/admin/", nil), 303, "")
	})
	t.Run("sweep", func(t *testing.T) {
		v := e.visitor(t, "192.0.2.23")
		expect(t, "sign-in", v.signin("ines@example.org", pw), 303, "/admin")
		clock.Advance(time.Hour)
		n, err := e.store.SweepSessions(context.Background(), preferences.SessionPolicy{Idle: 30 * time.Minute, Max: 12 * time.Hour})
		if err != nil || n < 1 {
			t.Fatalf("swept %d (%v), want the idle session", n, err)
		}
		if e.store.BucketLen(t, "prefs.sessions") != 0 {
			t.Fatal("sessions left after the sweep")
		}
	})
}

func TestSignInThrottled(t *testing.T) {
	t.Run("per account", func(t *testing.T) {
		e := newEnv(t, webauth.Config{AccountFailures: 3, IPFailures: 100, FailureWindow: 15 * time.Minute})
		_, pw := e.user(t, "lea@example.org", preferences.RoleViewer)
		for i := range 3 {
			v := e.visitor(t, "198.51.100."+string(rune('1'+i)))
			expect(t, "a wrong password", v.signin("lea@example.org", "not the password"), 422, "")
		}
		v := e.visitor(t, "198.51.100.9")
		a := v.signin("lea@example.org", pw)
		if a.status != 429 || a.header.Get("Retry-After") == "" || !strings.Contains(a.body, "Too many attempts") {
			t.Fatalf("fourth attempt, right password: %d Retry-After %q", a.status, a.header.Get("Retry-After"))
		}
		e.user(t, "sam@example.org", preferences.RoleViewer)
		expect(t, "another account meanwhile", v.signin("sam@example.org", "correct horse battery viewer"), 303, "/admin")
		e.store.Clock.Advance(5 * time.Minute) // a failure back every 5 minutes
		expect(t, "after the wait", e.visitor(t, "198.51.100.9").signin("lea@example.org", pw), 303, "/admin")
	})
	t.Run("per client", func(t *testing.T) {
		e := newEnv(t, webauth.Config{AccountFailures: 100, IPFailures: 3, FailureWindow: 15 * time.Minute})
		_, pw := e.user(t, "lea@example.org", preferences.RoleViewer)
		v := e.visitor(t, "203.0.113.5")
		for _, who := range []string{"a@example.org", "b@example.org", "c@example.org"} {
			expect(t, "a guess", v.signin(who, "guess guess guess"), 422, "")
		}
		expect(t, "the client's next try", v.signin("lea@example.org", pw), 429, "")
		expect(t, "another client", e.visitor(t, "203.0.113.6").signin("lea@example.org", pw), 303, "/admin")
		log, _ := e.store.AuthLog(context.Background(), 10)
		if log[1].Outcome != preferences.AuthThrottled {
			t.Fatalf("throttled attempt logged as %+v", log[1])
		}
	})
}

var secretField = regexp.MustCompile(`name="secret" value="([A-Z2-7]+)"`)

// enrol turns TOTP on through the account pages and returns the secret.
func enrol(tb testing.TB, e *env, v *visitor) string {
	tb.Helper()
	page := v.do("GET", "/admin/account/totp", nil)
	m := secretField.FindStringSubmatch(page.body)
	if page.status != 200 || m == nil || !strings.Contains(page.body, "otpauth://totp/") {
		tb.Fatalf("enrol page: %d\n%s", page.status, page.body)
	}
	secret := m[1]
	expect(tb, "a wrong code", v.post("/admin/account/totp", "/admin/account/totp", url.Values{"secret": {secret}, "code": {"000000"}}), 422, "")
	code, _ := preferences.TOTPCode(secret, e.store.Clock.Now())
	expect(tb, "enrol", v.post("/admin/account/totp", "/admin/account/totp", url.Values{"secret": {secret}, "code": {code}}), 303, "/admin/account?flash=totp_on")
	return secret
}

func TestTOTP(t *testing.T) {
	e := newEnv(t, webauth.Config{})
	_, pw := e.user(t, "theo@example.org", preferences.RoleDPO)
	v := e.visitor(t, "192.0.2.30")
	expect(t, "sign-in", v.signin("theo@example.org", pw), 303, "/admin")
	secret := enrol(t, e, v)
	enrolCode, _ := preferences.TOTPCode(secret, e.store.Clock.Now())
	expect(t, "sign-out", v.post("/admin/account", "/admin/signout", url.Values{}), 303, "")

	expect(t, "password", v.post("/admin/signin", "/admin/signin?next=%2Fadmin%2Fdpo", url.Values{"email": {"theo@example.org"}, "password": {pw}}),
		303, "/admin/signin/totp?next=%2Fadmin%2Fdpo")
	expect(t, "a page before the code", v.do("GET", "/admin/dpo", nil), 303, "")
	expect(t, "the enrolment's code again", v.post("/admin/signin/totp", "/admin/signin/totp", url.Values{"code": {enrolCode}}), 422, "")
	expect(t, "a wrong code", v.post("/admin/signin/totp", "/admin/signin/totp", url.Values{"code": {"123456"}}), 422, "")
	e.store.Clock.Advance(30 * time.Second)
	code, _ := preferences.TOTPCode(secret, e.store.Clock.Now())
	expect(t, "the code", v.post("/admin/signin/totp", "/admin/signin/totp?next=%2Fadmin%2Fdpo", url.Values{"code": {code}}), 303, "/admin/dpo")
	expect(t, "signed in", v.do("GET", "/admin/dpo", nil), 200, "")

	// The same code, replayed by someone who saw it, within its window.
	w := e.visitor(t, "192.0.2.31")
	expect(t, "password", w.signin("theo@example.org", pw), 303, "/admin/signin/totp")
	expect(t, "a replayed code", w.post("/admin/signin/totp", "/admin/signin/totp", url.Values{"code": {code}}), 422, "")
	// The code step does not outlast five minutes.
	e.store.Clock.Advance(6 * time.Minute)
	expect(t, "a stale code step", w.do("GET", "/admin/signin/totp", nil), 303, "/admin/signin?m=expired")

	// Turning it off takes the password.
	expect(t, "off with a wrong password", v.post("/admin/account", "/admin/account/totp/off", url.Values{"password": {"nope nope nope"}}), 422, "")
	expect(t, "off", v.post("/admin/account", "/admin/account/totp/off", url.Values{"password": {pw}}), 303, "/admin/account?flash=totp_off")
	u, _ := e.store.UserByEmail(context.Background(), "theo@example.org")
	if u.TOTPEnabled {
		t.Fatal("TOTP still on")
	}
}

func TestAdminRequiresTOTPAndOneTimePasswords(t *testing.T) {
	e := newEnv(t, webauth.Config{})
	_, adminPW := e.user(t, "root@example.org", preferences.RoleAdmin)
	admin := e.visitor(t, "192.0.2.40")
	expect(t, "admin sign-in", admin.signin("root@example.org", adminPW), 303, "/admin")

	// An admin adds a user: the one-time password is on the answer, once.
	a := admin.post("/admin/settings/users", "/admin/settings/users", url.Values{"email": {"nora@example.org"}, "role": {"marketer"}})
	m := regexp.MustCompile(`id="one-time-password">([^<]+)<`).FindStringSubmatch(a.body)
	if a.status != 201 || m == nil {
		t.Fatalf("create user: %d\n%s", a.status, a.body)
	}
	once := m[1]
	if page := admin.do("GET", "/admin/settings/users", nil); strings.Contains(page.body, once) || !strings.Contains(page.body, "nora@example.org") {
		t.Fatal("the users page shows the one-time password again, or not the user")
	}
	u, _ := e.store.UserByEmail(context.Background(), "nora@example.org")
	expect(t, "require TOTP", admin.post("/admin/settings/users/"+u.ID, "/admin/settings/users/"+u.ID, url.Values{"action": {"totp-required"}}),
		303, "/admin/settings/users/"+u.ID+"?flash=required")

	v := e.visitor(t, "192.0.2.41")
	expect(t, "sign-in with the one-time password", v.signin("nora@example.org", once), 303, "/admin")
	expect(t, "first the password", v.do("GET", "/admin/", nil), 303, "/admin/account")
	expect(t, "a weak password", v.post("/admin/account", "/admin/account/password", url.Values{"current": {once}, "new": {"short"}, "confirm": {"short"}}), 422, "")
	expect(t, "her own password", v.post("/admin/account", "/admin/account/password",
		url.Values{"current": {once}, "new": {"a long passphrase of hers"}, "confirm": {"a long passphrase of hers"}}), 303, "/admin/account/totp")
	expect(t, "then the second factor", v.do("GET", "/admin/", nil), 303, "/admin/account/totp")
	expect(t, "the account page waits too", v.do("GET", "/admin/account", nil), 303, "/admin/account/totp")
	enrol(t, e, v)
	expect(t, "then the app", v.do("GET", "/admin/", nil), 200, "")
	expect(t, "TOTP cannot be turned off when required", v.post("/admin/account", "/admin/account/totp/off", url.Values{"password": {"a long passphrase of hers"}}), 403, "")

	// Disabling ends her sessions at once.
	expect(t, "disable", admin.post("/admin/settings/users/"+u.ID, "/admin/settings/users/"+u.ID, url.Values{"action": {"disable"}}), 303, "")
	expect(t, "a disabled user's session", v.do("GET", "/admin/", nil), 303, "")
	// The last admin stays one.
	me, _ := e.store.UserByEmail(context.Background(), "root@example.org")
	expect(t, "demote the last admin", admin.post("/admin/settings/users/"+me.ID, "/admin/settings/users/"+me.ID, url.Values{"action": {"role"}, "role": {"viewer"}}), 409, "")
}

func TestAPIKeysPage(t *testing.T) {
	e := newEnv(t, webauth.Config{})
	_, pw := e.user(t, "root@example.org", preferences.RoleAdmin)
	v := e.visitor(t, "192.0.2.50")
	expect(t, "sign-in", v.signin("root@example.org", pw), 303, "/admin")
	a := v.post("/admin/settings/apikeys", "/admin/settings/apikeys", url.Values{"name": {"CRM sync"}, "role": {"marketer"}})
	m := regexp.MustCompile(`id="api-key">(cmk_[^<]+)<`).FindStringSubmatch(a.body)
	if a.status != 201 || m == nil {
		t.Fatalf("create key: %d\n%s", a.status, a.body)
	}
	p, err := preferences.NewAuthenticator(e.store.Store).Authenticate(context.Background(), m[1])
	if err != nil || p.Role != "marketer" || p.Name != "CRM sync" {
		t.Fatalf("the key shown: %+v %v", p, err)
	}
	expect(t, "the reserved name", v.post("/admin/settings/apikeys", "/admin/settings/apikeys", url.Values{"name": {preferences.BootstrapKeyName}, "role": {"admin"}}), 422, "")
	expect(t, "revoke", v.post("/admin/settings/apikeys", "/admin/settings/apikeys/"+p.KeyID+"/revoke", url.Values{}), 303, "/admin/settings/apikeys?flash=revoked")
	if _, err := preferences.NewAuthenticator(e.store.Store).Authenticate(context.Background(), m[1]); err == nil {
		t.Fatal("the revoked key still works")
	}
}

func TestSingleSignOn(t *testing.T) {
	m, err := mockoidc.Run()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Shutdown() })
	mc := m.Config()
	e := newEnv(t, webauth.Config{BaseURL: "http://admin.test", OIDC: &webauth.OIDCConfig{Issuer: mc.Issuer,
		ClientID: mc.ClientID, ClientSecret: mc.ClientSecret,
		Roles: []webauth.RoleMapping{{Value: "cm-admins", Role: "admin"}, {Value: "marketing", Role: "marketer"}}}})
	provider := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}

	// sso walks the flow: start here, the provider (which signs the queued user in at
	// once), then the callback here.
	sso := func(v *visitor, user *mockoidc.MockUser) answer {
		t.Helper()
		m.QueueUser(user)
		start := v.do("GET", "/admin/oidc/start?next=%2Fadmin%2Fdpo", nil)
		u, err := url.Parse(start.location)
		if start.status != 303 || err != nil || u.Query().Get("code_challenge_method") != "S256" || u.Query().Get("nonce") == "" || u.Query().Get("state") == "" {
			t.Fatalf("start: %d to %q", start.status, start.location)
		}
		res, err := provider.Get(start.location)
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
		back, err := url.Parse(res.Header.Get("Location"))
		if err != nil || back.Host != "admin.test" {
			t.Fatalf("provider answered %d to %q", res.StatusCode, res.Header.Get("Location"))
		}
		return v.do("GET", back.RequestURI(), nil)
	}

	v := e.visitor(t, "192.0.2.60")
	if page := v.do("GET", "/admin/signin", nil); !strings.Contains(page.body, `href="/admin/oidc/start"`) {
		t.Fatal("no SSO button on the sign-in page")
	}
	a := sso(v, &mockoidc.MockUser{Subject: "u1", Email: "chef@example.org", EmailVerified: true, Groups: []string{"staff", "cm-admins"}})
	if a.status != 200 || !strings.Contains(a.body, `url=/admin/dpo`) {
		t.Fatalf("callback: %d\n%s", a.status, a.body)
	}
	expect(t, "signed in as admin", v.do("GET", "/admin/settings/users", nil), 200, "")
	u, err := e.store.UserByEmail(context.Background(), "chef@example.org")
	if err != nil || u.Role != "admin" || !u.SSO || u.HasPassword {
		t.Fatalf("SSO user: %+v %v", u, err)
	}

	w := e.visitor(t, "192.0.2.61")
	a = sso(w, &mockoidc.MockUser{Subject: "u2", Email: "intern@example.org", EmailVerified: true, Groups: []string{"interns"}})
	if a.status != 403 || !strings.Contains(a.body, "no role in this application") {
		t.Fatalf("unmapped user: %d\n%s", a.status, a.body)
	}
	expect(t, "no session for them", w.do("GET", "/admin/", nil), 303, "")
	if _, err := e.store.UserByEmail(context.Background(), "intern@example.org"); err == nil {
		t.Fatal("an unmapped user was created")
	}

	// A callback without this browser's state cookie is refused.
	x := e.visitor(t, "192.0.2.62")
	expect(t, "a forged callback", x.do("GET", "/admin/oidc/callback?code=abc&state=def", nil), 400, "")
}
