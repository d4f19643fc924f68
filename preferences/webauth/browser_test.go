package webauth_test

import (
	"context"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/gofiber/fiber/v2"
	"github.com/gofiber/fiber/v2/middleware/filesystem"

	"consentmail/preferences"
	"consentmail/preferences/webauth"
	"consentmail/templates"
	"consentmail/templates/browsertest"
)

// serve runs the env's app on a loopback port with the admin app's static files,
// until the test ends, and returns its base URL.
func (e *env) serve(tb testing.TB) string {
	tb.Helper()
	site := templates.Site{Company: "Acme", Accent: "#0f766e"}
	e.app.Get("/static/brand.css", func(c *fiber.Ctx) error {
		c.Set(fiber.HeaderContentType, "text/css; charset=utf-8")
		return c.Send(templates.BrandCSS(site))
	})
	e.app.Use("/static", filesystem.New(filesystem.Config{Root: http.FS(templates.Static())}))
	return browsertest.Serve(tb, e.app)
}

func TestPagesInBrowser(t *testing.T) {
	e := newEnv(t, webauth.Config{})
	base := e.serve(t)
	ctx0 := context.Background()
	root, rootPW := e.user(t, "root@example.org", preferences.RoleAdmin)
	secret, _, err := preferences.NewTOTPKey("Acme", root.Email)
	if err != nil {
		t.Fatal(err)
	}
	code, _ := preferences.TOTPCode(secret, e.store.Clock.Now())
	if _, err := e.store.EnableTOTP(ctx0, root.ID, secret, code); err != nil {
		t.Fatal(err)
	}
	e.user(t, "mara@example.org", preferences.RoleMarketer)
	_, phonePW := e.user(t, "phone@example.org", preferences.RoleAdmin)
	if _, _, err := e.store.CreateAPIKey(ctx0, preferences.RoleViewer, "Dashboard"); err != nil {
		t.Fatal(err)
	}

	b := browsertest.New(t, 1280, 900)
	ctx := b.Tab(t)
	if s := browsertest.Open(t, ctx, base+"/admin/settings/users"); s != 200 || browsertest.Heading(t, ctx) != "Sign in" {
		t.Fatalf("settings without a session: %d, heading %q", s, browsertest.Heading(t, ctx))
	}
	browsertest.Axe(t, ctx, "signin")
	browsertest.Shot(t, ctx, "signin")
	browsertest.Do(t, ctx, "type the password",
		chromedp.SendKeys(chromedp.ID("email"), root.Email), chromedp.SendKeys(chromedp.ID("password"), rootPW))
	if s := browsertest.Submit(t, ctx, "main form button[type=submit]"); s != 200 || browsertest.Heading(t, ctx) != "Two-step verification" {
		t.Fatalf("after the password: %d, heading %q", s, browsertest.Heading(t, ctx))
	}
	browsertest.Axe(t, ctx, "signin-totp")
	browsertest.Shot(t, ctx, "signin-totp")
	e.store.Clock.Advance(30 * time.Second)
	code, _ = preferences.TOTPCode(secret, e.store.Clock.Now())
	browsertest.Do(t, ctx, "type the code", chromedp.SendKeys(chromedp.ID("code"), code))
	if s := browsertest.Submit(t, ctx, "main form button[type=submit]"); s != 200 || browsertest.Heading(t, ctx) != "Users" {
		t.Fatalf("after the code: %d, heading %q", s, browsertest.Heading(t, ctx))
	}
	browsertest.Axe(t, ctx, "settings-users")
	browsertest.Shot(t, ctx, "settings-users")

	browsertest.Open(t, ctx, base+"/admin/settings/apikeys")
	browsertest.Do(t, ctx, "name a key", chromedp.SendKeys(chromedp.ID("key-name"), "CRM sync"),
		chromedp.SetValue(chromedp.ID("key-role"), "marketer"))
	if s := browsertest.Submit(t, ctx, "form[action='/admin/settings/apikeys'] button[type=submit]"); s != 201 {
		t.Fatalf("create a key: %d", s)
	}
	if key := browsertest.Value(t, ctx, "the key", chromedp.Text(chromedp.ID("api-key"))); !strings.HasPrefix(key, "cmk_") {
		t.Fatalf("key shown: %q", key)
	}
	browsertest.Axe(t, ctx, "settings-apikeys")
	browsertest.Shot(t, ctx, "settings-apikeys")

	mara, _ := e.store.UserByEmail(ctx0, "mara@example.org")
	browsertest.Open(t, ctx, base+"/admin/settings/users/"+mara.ID)
	browsertest.Axe(t, ctx, "settings-user")
	browsertest.Shot(t, ctx, "settings-user")

	browsertest.Open(t, ctx, base+"/admin/account")
	browsertest.Axe(t, ctx, "account")
	browsertest.Shot(t, ctx, "account")
	browsertest.Open(t, ctx, base+"/admin/account?lang=fr")
	if h := browsertest.Heading(t, ctx); h != "Votre compte" {
		t.Fatalf("account in French: heading %q", h)
	}
	browsertest.Axe(t, ctx, "account-fr")
	browsertest.Shot(t, ctx, "account-fr")

	// A phone, 390 px wide.
	phone := browsertest.New(t, 390, 844)
	pctx := phone.Tab(t)
	browsertest.Open(t, pctx, base+"/admin/signin")
	browsertest.Shot(t, pctx, "signin-390")
	browsertest.Do(t, pctx, "type the password",
		chromedp.SendKeys(chromedp.ID("email"), "phone@example.org"), chromedp.SendKeys(chromedp.ID("password"), phonePW))
	browsertest.Submit(t, pctx, "main form button[type=submit]")
	browsertest.Open(t, pctx, base+"/admin/account/totp")
	browsertest.Axe(t, pctx, "account-totp-390")
	browsertest.Shot(t, pctx, "account-totp-390")
	browsertest.Open(t, pctx, base+"/admin/settings/users")
	browsertest.Axe(t, pctx, "settings-users-390")
	browsertest.Shot(t, pctx, "settings-users-390")
}
