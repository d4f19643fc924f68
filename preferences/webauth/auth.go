package webauth

import (
	"context"
	"crypto/rand"
	"crypto/subtle"
	"embed"
	"encoding/base64"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/gofiber/fiber/v2"

	"consentmail/preferences"
	"consentmail/preferences/clientip"
	"consentmail/templates"
)

// Cookies of the admin app; all HttpOnly, Path=/admin, Secure when the base URL is
// https.
const (
	CookieSession = "cm_session" // the session token (SameSite=Strict)
	cookieSignin  = "cm_signin"  // the sign-in form's double-submit token (SameSite=Strict)
	cookieLang    = "cm_lang"    // the language chosen while signed out
	cookieOIDC    = "cm_oidc"    // the state of a single sign-on under way (SameSite=Lax: it returns from the provider)
)

// CSRFHeader is the header htmx requests carry the session's CSRF token in (forms
// post it as the _csrf field).
const CSRFHeader = "X-CSRF-Token"

// Defaults of Config.
const (
	DefaultIdle            = 30 * time.Minute
	DefaultMax             = 12 * time.Hour
	DefaultAccountFailures = 5  // failed sign-ins per account per FailureWindow
	DefaultIPFailures      = 20 // failed sign-ins per client (IPv4 address, IPv6 /64) per FailureWindow
	DefaultFailureWindow   = 15 * time.Minute
	// pendingTTL is how long the code step of a sign-in waits after the password.
	pendingTTL = 5 * time.Minute
	// sweepEvery is how often Run deletes expired sessions.
	sweepEvery = 10 * time.Minute
)

// Config configures sign-in to the admin app.
type Config struct {
	BaseURL  string // the public base URL; https makes the cookies Secure, and it is where single sign-on returns
	Sessions preferences.SessionPolicy
	Issuer   string // shown in authenticator apps next to the account (the company's name)
	OIDC     *OIDCConfig
	// Failed sign-ins allowed per account and per client in FailureWindow (a failure
	// more waits for the window to give one back); zero: the defaults.
	AccountFailures, IPFailures int
	FailureWindow               time.Duration
}

// Auth signs people in to the admin app and guards its pages.
type Auth struct {
	store    *preferences.Store
	views    *templates.AdminViews
	site     templates.Site
	cfg      Config
	secure   bool
	now      func() time.Time
	log      *slog.Logger
	accounts *clientip.Limiter // failures per account (keyed by the address typed, lower-cased)
	ips      *clientip.Limiter // failures per client
	oidc     *oidcClient       // nil without single sign-on
}

//go:embed pages
var pagesFS embed.FS

// New returns the admin app's sign-in over the store's users and sessions. site is
// the branding pages show; now is the clock of sessions' throttles.
func New(store *preferences.Store, r *templates.Renderer, site templates.Site, cfg Config, now func() time.Time, log *slog.Logger) (*Auth, error) {
	sub, err := fs.Sub(pagesFS, "pages")
	if err != nil {
		return nil, err
	}
	views, err := r.AdminViews(sub)
	if err != nil {
		return nil, err
	}
	if cfg.Sessions.Idle <= 0 {
		cfg.Sessions.Idle = DefaultIdle
	}
	if cfg.Sessions.Max <= 0 {
		cfg.Sessions.Max = DefaultMax
	}
	if cfg.AccountFailures <= 0 {
		cfg.AccountFailures = DefaultAccountFailures
	}
	if cfg.IPFailures <= 0 {
		cfg.IPFailures = DefaultIPFailures
	}
	if cfg.FailureWindow <= 0 {
		cfg.FailureWindow = DefaultFailureWindow
	}
	if cfg.Issuer == "" {
		cfg.Issuer = "consentmail"
	}
	a := &Auth{store: store, views: views, site: site, cfg: cfg, now: now, log: log,
		secure:   strings.HasPrefix(cfg.BaseURL, "https://"),
		accounts: clientip.NewLimiter(cfg.AccountFailures, cfg.FailureWindow, 0, now),
		ips:      clientip.NewLimiter(cfg.IPFailures, cfg.FailureWindow, 0, now)}
	if cfg.OIDC != nil {
		a.oidc = newOIDCClient(*cfg.OIDC, strings.TrimRight(cfg.BaseURL, "/")+"/admin/oidc/callback", now)
	}
	return a, nil
}

// Run deletes expired sessions every ten minutes until ctx ends.
func (a *Auth) Run(ctx context.Context) error {
	t := time.NewTicker(sweepEvery)
	defer t.Stop()
	for {
		if n, err := a.store.SweepSessions(ctx, a.cfg.Sessions); err != nil {
			a.log.Warn("sweep admin sessions", "err", err)
		} else if n > 0 {
			a.log.Debug("admin sessions expired", "n", n)
		}
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}

// Middleware is what the whole /admin group runs before its routes: the admin app's
// security headers, the session (admitted with With when there is one) and the CSRF
// check of every POST, PUT, PATCH and DELETE. Mount the group with it:
//
//	admin := app.Group("/admin", auth.Middleware()...)
func (a *Auth) Middleware() []fiber.Handler {
	return []fiber.Handler{a.headers, a.session, a.csrf}
}

// headers tighten the global CSP for admin pages: scripts from this origin only
// (htmx), frames of this origin (previews), requests to this origin (htmx), and the
// logo's origin when it is elsewhere.
func (a *Auth) headers(c *fiber.Ctx) error {
	img := "'self' data:"
	if u, err := url.Parse(a.site.LogoURL); err == nil && u.Scheme == "https" && u.Host != "" {
		img += " https://" + u.Host
	}
	c.Set("Content-Security-Policy", "default-src 'none'; script-src 'self'; style-src 'self'; img-src "+img+
		"; connect-src 'self'; frame-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'")
	c.Set(fiber.HeaderCacheControl, "no-store")
	return c.Next()
}

// signedIn is the request's session as the middleware found it.
type signedIn struct {
	token string
	sess  preferences.UserSession
	user  preferences.User
}

const stateKey = "consentmail.webauth"

func stateOf(c *fiber.Ctx) *signedIn {
	st, _ := c.Locals(stateKey).(*signedIn)
	return st
}

// session loads the session of the cookie, and the language.
func (a *Auth) session(c *fiber.Ctx) error {
	lang := c.Query("lang")
	if lang != "en" && lang != "fr" {
		lang = ""
	}
	if lang != "" {
		a.setCookie(c, cookieLang, lang, 365*24*time.Hour, "Strict")
	}
	if token := c.Cookies(CookieSession); token != "" {
		sess, user, err := a.store.Session(c.UserContext(), token, a.cfg.Sessions)
		switch {
		case err == nil:
			if lang != "" && lang != user.Lang && sess.Pending == "" {
				if u, err := a.store.ChangeUserLang(c.UserContext(), user.ID, lang); err == nil {
					user = u
				}
			}
			st := &signedIn{token: token, sess: sess, user: user}
			c.Locals(stateKey, st)
			if sess.Pending == "" {
				With(c, Session{UserID: user.ID, Email: user.Email, Role: user.Role, CSRF: sess.CSRF, Lang: a.lang(c, user.Lang)})
			}
		case errors.Is(err, preferences.ErrNotFound):
			a.clearCookie(c, CookieSession)
		default:
			return err
		}
	}
	return c.Next()
}

// lang is the language of a page: the user's choice, else the one chosen on this
// browser, else "" (Page then follows Accept-Language).
func (a *Auth) lang(c *fiber.Ctx, stored string) string {
	if stored != "" {
		return stored
	}
	if q := c.Query("lang"); q == "en" || q == "fr" {
		return q
	}
	if l := c.Cookies(cookieLang); l == "en" || l == "fr" {
		return l
	}
	return ""
}

// csrf refuses a state-changing request whose token (the _csrf field, or the
// X-CSRF-Token header) is not the session's, or, without a session, the sign-in
// form's double-submit cookie.
func (a *Auth) csrf(c *fiber.Ctx) error {
	switch c.Method() {
	case fiber.MethodGet, fiber.MethodHead, fiber.MethodOptions:
		return c.Next()
	}
	sent := c.Get(CSRFHeader)
	if sent == "" {
		sent = c.FormValue("_csrf")
	}
	want := c.Cookies(cookieSignin)
	if st := stateOf(c); st != nil {
		want = st.sess.CSRF
	}
	if want == "" || len(sent) != len(want) || subtle.ConstantTimeCompare([]byte(sent), []byte(want)) != 1 {
		return a.message(c, fiber.StatusForbidden, "auth.csrf.title", "auth.csrf.text")
	}
	return c.Next()
}

// Admits is the admin app's role rule: a person of role may go where roles may (no
// roles: anyone signed in); an admin may go everywhere.
func Admits(role string, roles ...string) bool {
	return len(roles) == 0 || (templates.AdminUser{Role: role}).Can(roles...)
}

// Require admits a signed-in person whose role is one of roles (admin always; no
// roles: any role). Without a session a GET is sent to the sign-in page (which
// comes back here), anything else is refused with 401; a role too low gets 403. A
// person who must first change their one-time password or enrol a second factor is
// sent there.
func (a *Auth) Require(roles ...string) fiber.Handler {
	return func(c *fiber.Ctx) error {
		st := stateOf(c)
		if st == nil || st.sess.Pending != "" {
			return a.toSignin(c)
		}
		if to := a.gate(st); to != "" {
			if c.Method() == fiber.MethodGet || c.Method() == fiber.MethodHead {
				return c.Redirect(to, fiber.StatusSeeOther)
			}
			return a.message(c, fiber.StatusForbidden, "auth.forbidden.title", "auth.account.must_change")
		}
		if !Admits(st.user.Role, roles...) {
			return a.message(c, fiber.StatusForbidden, "auth.forbidden.title", "auth.forbidden.text",
				a.views.T(a.pageLang(c), "admin.role."+st.user.Role))
		}
		return c.Next()
	}
}

// gate is where a signed-in person must go before anything else: choosing their own
// password after a one-time one, then enrolling the second factor an admin requires
// (people who came by single sign-on have their provider's factors instead).
func (a *Auth) gate(st *signedIn) string {
	if st.sess.Method == preferences.MethodSSO {
		return ""
	}
	if st.user.MustChangePassword {
		return "/admin/account"
	}
	if st.user.TOTPRequired && !st.user.TOTPEnabled {
		return "/admin/account/totp"
	}
	return ""
}

func (a *Auth) toSignin(c *fiber.Ctx) error {
	if c.Method() == fiber.MethodGet || c.Method() == fiber.MethodHead {
		return c.Redirect("/admin/signin?next="+url.QueryEscape(c.OriginalURL()), fiber.StatusSeeOther)
	}
	if c.Get("HX-Request") != "" {
		c.Set("HX-Redirect", "/admin/signin")
	}
	return a.message(c, fiber.StatusUnauthorized, "auth.unauthorized.title", "auth.unauthorized.text")
}

// localNext is next when it is a path of the admin app (and not a sign-in page),
// else "/admin": a sign-in never sends anyone elsewhere.
func localNext(next string) string {
	if next == "" || !strings.HasPrefix(next, "/admin") || strings.ContainsAny(next, "\\\r\n") ||
		strings.HasPrefix(next, "//") {
		return "/admin"
	}
	u, err := url.Parse(next)
	if err != nil || u.Scheme != "" || u.Host != "" || u.User != nil ||
		(u.Path != "/admin" && !strings.HasPrefix(u.Path, "/admin/")) ||
		strings.HasPrefix(u.Path, "/admin/signin") || strings.HasPrefix(u.Path, "/admin/oidc") || strings.Contains(u.Path, "..") {
		return "/admin"
	}
	return u.RequestURI()
}

// pageLang is the language pages of this request are in.
func (a *Auth) pageLang(c *fiber.Ctx) string {
	if s, ok := Current(c); ok && s.Lang != "" {
		return s.Lang
	}
	if l := a.lang(c, ""); l != "" {
		return l
	}
	return templates.Negotiate("", c.Get(fiber.HeaderAcceptLanguage))
}

// page builds an admin page of this package: Page, in the language of the request
// also for people not signed in.
func (a *Auth) page(c *fiber.Ctx, section, titleKey string, data any) templates.AdminPage {
	lang := a.pageLang(c)
	p := Page(c, a.site, section, a.views.T(lang, titleKey), data)
	p.Lang = lang
	if st := stateOf(c); st != nil && p.CSRF == "" {
		p.CSRF = st.sess.CSRF // the code step of a sign-in
	}
	if f := c.Query("flash"); f != "" && flashes[f] {
		p.Flash = a.views.T(lang, "auth.flash."+f)
	}
	return p
}

// flashes are the confirmations a redirect after POST may ask for (?flash=NAME).
var flashes = map[string]bool{"password": true, "totp_on": true, "totp_off": true, "lang": true, "role": true,
	"required": true, "unrequired": true, "disabled": true, "enabled": true, "revoked": true}

func (a *Auth) render(c *fiber.Ctx, status int, name string, p templates.AdminPage) error {
	return Render(c, status, a.views, name, p)
}

// message answers with a page of one message.
func (a *Auth) message(c *fiber.Ctx, status int, titleKey, textKey string, args ...any) error {
	p := a.page(c, "", titleKey, nil)
	p.Data = struct{ Text string }{a.views.T(p.Lang, textKey, args...)}
	return a.render(c, status, "message", p)
}

func (a *Auth) setCookie(c *fiber.Ctx, name, value string, maxAge time.Duration, sameSite string) {
	path := "/admin"
	if name == cookieOIDC {
		path = "/admin/oidc"
	}
	c.Cookie(&fiber.Cookie{Name: name, Value: value, Path: path, HTTPOnly: true, Secure: a.secure,
		SameSite: sameSite, MaxAge: int(maxAge / time.Second)})
}

func (a *Auth) clearCookie(c *fiber.Ctx, name string) {
	path := "/admin"
	if name == cookieOIDC {
		path = "/admin/oidc"
	}
	c.Cookie(&fiber.Cookie{Name: name, Value: "", Path: path, HTTPOnly: true, Secure: a.secure, SameSite: "Strict",
		MaxAge: -1, Expires: time.Unix(1, 0)})
}

// startSession signs a user in on this browser: a new token (never the one of an
// earlier step), in the session cookie for as long as a session may last.
func (a *Auth) startSession(c *fiber.Ctx, userID, pending, method string) error {
	if st := stateOf(c); st != nil {
		if err := a.store.DeleteSession(c.UserContext(), st.token); err != nil {
			return err
		}
	}
	token, _, err := a.store.CreateSession(c.UserContext(), userID, pending, method)
	if err != nil {
		return err
	}
	a.setCookie(c, CookieSession, token, a.cfg.Sessions.Max, "Strict")
	a.clearCookie(c, cookieSignin)
	return nil
}

func randomString(n int) string {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		panic(fmt.Sprintf("crypto/rand: %v", err))
	}
	return base64.RawURLEncoding.EncodeToString(b)
}

// retryAfter sets Retry-After and returns the wait in minutes, rounded up.
func retryAfter(c *fiber.Ctx, wait time.Duration) int {
	secs := int((wait + time.Second - 1) / time.Second)
	c.Set(fiber.HeaderRetryAfter, strconv.Itoa(secs))
	return (secs + 59) / 60
}
