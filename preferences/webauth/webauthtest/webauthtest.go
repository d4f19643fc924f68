// Package webauthtest serves a feature's admin pages in its own tests the way cmd
// mounts them, with a stand-in for the sign-in: the role check is webauth's own rule
// (webauth.Admits), the headers and static files are the admin app's.
package webauthtest

import (
	"net"
	"net/http"
	"testing"
	"time"

	"github.com/gofiber/fiber/v2"
	"github.com/gofiber/fiber/v2/middleware/filesystem"

	"consentmail/preferences/webauth"
	"consentmail/templates"
)

// Require stands in for webauth's Auth.Require: 401 without a session (set by the
// test's own middleware with webauth.With), 403 for a role webauth.Admits refuses.
func Require(roles ...string) fiber.Handler {
	return func(c *fiber.Ctx) error {
		s, ok := webauth.Current(c)
		if !ok {
			return fiber.ErrUnauthorized
		}
		if !webauth.Admits(s.Role, roles...) {
			return fiber.ErrForbidden
		}
		return c.Next()
	}
}

// CSP is the admin pages' Content-Security-Policy, as cmd sends it.
const CSP = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; " +
	"frame-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"

// Serve mounts pages on a real listener, as cmd does: the admin CSP, /static with
// brand.css, and an /admin group behind session (the test's stand-in for the
// sign-in, which calls webauth.With) with Require. It returns the base URL.
func Serve(tb testing.TB, session fiber.Handler, mount func(admin fiber.Router, require func(roles ...string) fiber.Handler)) string {
	tb.Helper()
	app := fiber.New(fiber.Config{Immutable: true, DisableStartupMessage: true})
	app.Use(func(c *fiber.Ctx) error {
		c.Set("Content-Security-Policy", CSP)
		return c.Next()
	})
	app.Get("/static/brand.css", func(c *fiber.Ctx) error {
		c.Set(fiber.HeaderContentType, "text/css; charset=utf-8")
		return c.Send(templates.BrandCSS(templates.Site{}))
	})
	app.Use("/static", filesystem.New(filesystem.Config{Root: http.FS(templates.Static())}))
	mount(app.Group("/admin", session), Require)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	go app.Listener(ln)
	tb.Cleanup(func() { app.ShutdownWithTimeout(5 * time.Second) })
	return "http://" + ln.Addr().String()
}
