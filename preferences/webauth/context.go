// Package webauth signs people in to the admin web app (/admin): users with the API's
// roles, passwords, a TOTP second factor, server-side sessions behind a cookie, CSRF
// tokens on every form, and single sign-on with OpenID Connect. It is the admin app's
// edge, as apiauth is the API's: every feature's admin pages sit behind its Require
// and build their page with Page.
package webauth

import (
	"github.com/gofiber/fiber/v2"

	"consentmail/preferences"
	"consentmail/preferences/apiauth"
	"consentmail/templates"
)

// sessionKey is the fiber.Ctx local holding the request's Session.
const sessionKey = "consentmail.session"

// Session is who is signed in on this request, as the pages need it.
type Session struct {
	UserID string
	Email  string
	Role   string
	CSRF   string // the session's CSRF token; every form posts it as _csrf
	Lang   string // en or fr: the person's choice, else their browser's
}

// With admits s for this request: Current returns it and apiauth.Caller and
// apiauth.Actor name the person, so handlers shared with the API log them the same way.
func With(c *fiber.Ctx, s Session) {
	c.Locals(sessionKey, s)
	apiauth.SetCaller(c, preferences.Principal{UserID: s.UserID, Name: s.Email, Role: s.Role})
}

// Current returns the request's session (false outside Require).
func Current(c *fiber.Ctx) (Session, bool) {
	s, ok := c.Locals(sessionKey).(Session)
	return s, ok
}

// Page starts the page of a feature: title already translated, section the
// navigation entry it belongs to, data the feature's own.
func Page(c *fiber.Ctx, site templates.Site, section, title string, data any) templates.AdminPage {
	s, _ := Current(c)
	lang := s.Lang
	if lang == "" {
		lang = templates.Negotiate("", c.Get(fiber.HeaderAcceptLanguage))
	}
	return templates.AdminPage{Lang: lang, Title: title, Section: section, Site: site, Path: c.Path(), Data: data,
		User: templates.AdminUser{ID: s.UserID, Email: s.Email, Role: s.Role}, CSRF: s.CSRF}
}

// Render writes an admin page as the response, with status.
func Render(c *fiber.Ctx, status int, views *templates.AdminViews, name string, p templates.AdminPage) error {
	c.Set(fiber.HeaderContentType, fiber.MIMETextHTMLCharsetUTF8)
	c.Set(fiber.HeaderCacheControl, "no-store")
	return views.Render(c.Status(status), name, p)
}
