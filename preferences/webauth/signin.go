package webauth

import (
	"errors"
	"net/url"
	"strings"
	"time"

	"github.com/gofiber/fiber/v2"

	"consentmail/preferences"
)

// Routes mounts the sign-in, sign-out, account, single sign-on and Settings → Users
// and API keys pages on r, the /admin group (mounted with Middleware).
func (a *Auth) Routes(r fiber.Router) {
	r.Get("/signin", a.signinForm)
	r.Post("/signin", a.signin)
	r.Get("/signin/totp", a.totpForm)
	r.Post("/signin/totp", a.totpSignin)
	r.Post("/signout", a.signout)
	r.Get("/oidc/start", a.oidcStart)
	r.Get("/oidc/callback", a.oidcCallback)

	r.Get("/account", a.signedInOnly, a.account)
	r.Post("/account/password", a.signedInOnly, a.changePassword)
	r.Get("/account/totp", a.signedInOnly, a.enrolForm)
	r.Post("/account/totp", a.signedInOnly, a.enrol)
	r.Post("/account/totp/off", a.Require(), a.totpOff)
	r.Post("/account/lang", a.Require(), a.setLang)

	admin := a.Require(preferences.RoleAdmin)
	r.Get("/settings", admin, func(c *fiber.Ctx) error { return c.Redirect("/admin/settings/users", fiber.StatusSeeOther) })
	r.Get("/settings/users", admin, a.users)
	r.Post("/settings/users", admin, a.createUser)
	r.Get("/settings/users/:id", admin, a.userPage)
	r.Post("/settings/users/:id", admin, a.changeUser)
	r.Get("/settings/apikeys", admin, a.apiKeys)
	r.Post("/settings/apikeys", admin, a.createAPIKey)
	r.Post("/settings/apikeys/:id/revoke", admin, a.revokeAPIKey)
}

// signedInOnly admits a full session even when it must first change its password
// or enrol a second factor (the account pages are where that happens).
func (a *Auth) signedInOnly(c *fiber.Ctx) error {
	if st := stateOf(c); st == nil || st.sess.Pending != "" {
		return a.toSignin(c)
	}
	return c.Next()
}

type signinData struct {
	Email  string
	Next   string
	Failed string // catalog key of the error
	Notice string // catalog key of a notice
	SSO    bool
}

func (a *Auth) signinPage(c *fiber.Ctx, status int, d signinData) error {
	d.SSO = a.oidc != nil
	if d.Next == "/admin" {
		d.Next = ""
	}
	p := a.page(c, "", "auth.signin.title", d)
	// The form (no session yet) is protected by a double-submit token: the cookie and
	// the field must match.
	token := c.Cookies(cookieSignin)
	if len(token) < 32 {
		token = randomString(32)
	}
	a.setCookie(c, cookieSignin, token, time.Hour, "Strict")
	p.CSRF = token
	return a.render(c, status, "signin", p)
}

func (a *Auth) signinForm(c *fiber.Ctx) error {
	next := localNext(c.Query("next"))
	if st := stateOf(c); st != nil {
		if st.sess.Pending == "" {
			return c.Redirect(next, fiber.StatusSeeOther)
		}
		// A sign-in left at the code step starts again.
		if err := a.store.DeleteSession(c.UserContext(), st.token); err != nil {
			return err
		}
		c.Locals(stateKey, nil)
		a.clearCookie(c, CookieSession)
	}
	d := signinData{Next: next}
	switch c.Query("m") {
	case "out":
		d.Notice = "auth.signin.out"
	case "expired":
		d.Notice = "auth.signin.expired"
	}
	return a.signinPage(c, fiber.StatusOK, d)
}

// throttled answers 429 when the account or the client used up its failures.
func (a *Auth) throttled(c *fiber.Ctx, account string) (bool, error) {
	wait := max(a.ips.Wait(c.IP()), a.accounts.Wait(account))
	if wait <= 0 {
		return false, nil
	}
	mins := retryAfter(c, wait)
	lang := a.pageLang(c)
	when := a.views.T(lang, "auth.minute")
	if mins > 1 {
		when = a.views.T(lang, "auth.minutes", mins)
	}
	return true, a.message(c, fiber.StatusTooManyRequests, "auth.throttled.title", "auth.throttled.text", when)
}

// failed counts a failure against the account and the client.
func (a *Auth) failed(c *fiber.Ctx, account string) {
	a.ips.Allow(c.IP())
	a.accounts.Allow(account)
}

func accountKey(email string) string { return "account:" + strings.ToLower(strings.TrimSpace(email)) }

func (a *Auth) record(c *fiber.Ctx, e preferences.AuthEvent, typed string) {
	e.IP = c.IP()
	if err := a.store.RecordAuth(c.UserContext(), e, typed); err != nil {
		a.log.Error("auth log", "err", err)
	}
}

func (a *Auth) signin(c *fiber.Ctx) error {
	email, password := strings.TrimSpace(c.FormValue("email")), c.FormValue("password")
	next := localNext(c.Query("next"))
	key := accountKey(email)
	if stop, err := a.throttled(c, key); stop {
		a.record(c, preferences.AuthEvent{Outcome: preferences.AuthThrottled, Method: preferences.MethodPassword}, email)
		return err
	}
	u, err := a.store.CheckPassword(c.UserContext(), email, password)
	if errors.Is(err, preferences.ErrBadCredentials) {
		a.failed(c, key)
		a.record(c, preferences.AuthEvent{Outcome: preferences.AuthFailed, Method: preferences.MethodPassword}, email)
		return a.signinPage(c, fiber.StatusUnprocessableEntity, signinData{Email: email, Next: next, Failed: "auth.signin.failed"})
	}
	if err != nil {
		return err
	}
	if u.TOTPEnabled {
		if err := a.startSession(c, u.ID, preferences.PendingTOTP, preferences.MethodPassword); err != nil {
			return err
		}
		to := "/admin/signin/totp"
		if next != "/admin" {
			to += "?next=" + url.QueryEscape(next)
		}
		return c.Redirect(to, fiber.StatusSeeOther)
	}
	if err := a.startSession(c, u.ID, "", preferences.MethodPassword); err != nil {
		return err
	}
	a.record(c, preferences.AuthEvent{UserID: u.ID, Outcome: preferences.AuthOK, Method: preferences.MethodPassword}, "")
	return c.Redirect(next, fiber.StatusSeeOther)
}

// pendingState is the session at the code step, still fresh.
func (a *Auth) pendingState(c *fiber.Ctx) *signedIn {
	st := stateOf(c)
	if st == nil || st.sess.Pending != preferences.PendingTOTP || a.now().Sub(st.sess.Created) > pendingTTL {
		return nil
	}
	return st
}

type totpData struct {
	Next   string
	Failed string
}

func (a *Auth) totpForm(c *fiber.Ctx) error {
	if a.pendingState(c) == nil {
		return c.Redirect("/admin/signin?m=expired", fiber.StatusSeeOther)
	}
	next := localNext(c.Query("next"))
	if next == "/admin" {
		next = ""
	}
	return a.render(c, fiber.StatusOK, "signin_totp", a.page(c, "", "auth.totp.title", totpData{Next: next}))
}

func (a *Auth) totpSignin(c *fiber.Ctx) error {
	st := a.pendingState(c)
	if st == nil {
		return c.Redirect("/admin/signin?m=expired", fiber.StatusSeeOther)
	}
	next := localNext(c.Query("next"))
	key := accountKey(st.user.Email)
	if stop, err := a.throttled(c, key); stop {
		a.record(c, preferences.AuthEvent{UserID: st.user.ID, Outcome: preferences.AuthThrottled, Method: preferences.MethodTOTP}, "")
		return err
	}
	err := a.store.VerifyTOTP(c.UserContext(), st.user.ID, c.FormValue("code"))
	if errors.Is(err, preferences.ErrBadCode) {
		a.failed(c, key)
		a.record(c, preferences.AuthEvent{UserID: st.user.ID, Outcome: preferences.AuthFailed, Method: preferences.MethodTOTP}, "")
		shown := next
		if shown == "/admin" {
			shown = ""
		}
		return a.render(c, fiber.StatusUnprocessableEntity, "signin_totp",
			a.page(c, "", "auth.totp.title", totpData{Next: shown, Failed: "auth.totp.failed"}))
	}
	if err != nil {
		return err
	}
	if err := a.startSession(c, st.user.ID, "", preferences.MethodPassword); err != nil {
		return err
	}
	a.record(c, preferences.AuthEvent{UserID: st.user.ID, Outcome: preferences.AuthOK, Method: preferences.MethodTOTP}, "")
	return c.Redirect(next, fiber.StatusSeeOther)
}

func (a *Auth) signout(c *fiber.Ctx) error {
	if st := stateOf(c); st != nil {
		if err := a.store.DeleteSession(c.UserContext(), st.token); err != nil {
			return err
		}
	}
	a.clearCookie(c, CookieSession)
	return c.Redirect("/admin/signin?m=out", fiber.StatusSeeOther)
}
