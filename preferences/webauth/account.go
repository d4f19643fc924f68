package webauth

import (
	"errors"
	"net/url"
	"strings"

	"github.com/gofiber/fiber/v2"

	"consentmail/preferences"
)

type accountData struct {
	MustChange   bool
	HasPassword  bool
	TOTP         bool
	TOTPRequired bool
	Lang         string
	Errors       map[string]string // field -> catalog key
}

func (a *Auth) accountPage(c *fiber.Ctx, status int, errs map[string]string) error {
	st := stateOf(c)
	u := st.user
	d := accountData{MustChange: u.MustChangePassword && st.sess.Method != preferences.MethodSSO, HasPassword: u.HasPassword,
		TOTP: u.TOTPEnabled, TOTPRequired: u.TOTPRequired, Lang: u.Lang, Errors: errs}
	return a.render(c, status, "account", a.page(c, "account", "auth.account.title", d))
}

func (a *Auth) account(c *fiber.Ctx) error {
	if to := a.gate(stateOf(c)); to != "" && to != "/admin/account" {
		return c.Redirect(to, fiber.StatusSeeOther)
	}
	return a.accountPage(c, fiber.StatusOK, nil)
}

func (a *Auth) changePassword(c *fiber.Ctx) error {
	st := stateOf(c)
	current, next, confirm := c.FormValue("current"), c.FormValue("new"), c.FormValue("confirm")
	errs := map[string]string{}
	if preferences.ValidatePassword(next) != nil {
		errs["new"] = "auth.account.weak"
	} else if next != confirm {
		errs["confirm"] = "auth.account.mismatch"
	}
	if len(errs) > 0 {
		return a.accountPage(c, fiber.StatusUnprocessableEntity, errs)
	}
	key := accountKey(st.user.Email)
	if stop, err := a.throttled(c, key); stop {
		return err
	}
	err := a.store.ChangePassword(c.UserContext(), st.user.ID, current, next, st.token)
	if errors.Is(err, preferences.ErrBadCredentials) {
		a.failed(c, key)
		return a.accountPage(c, fiber.StatusUnprocessableEntity, map[string]string{"current": "auth.account.wrong"})
	}
	if err != nil {
		return err
	}
	st.user.MustChangePassword = false
	to := "/admin/account?flash=password"
	if g := a.gate(st); g != "" && g != "/admin/account" {
		to = g
	}
	return c.Redirect(to, fiber.StatusSeeOther)
}

type enrolData struct {
	Secret, Grouped, URI string
	Required, Failed     bool
}

// group writes a key in groups of four characters, easier to type.
func group(s string) string {
	var b strings.Builder
	for i, r := range s {
		if i > 0 && i%4 == 0 {
			b.WriteByte(' ')
		}
		b.WriteRune(r)
	}
	return b.String()
}

func (a *Auth) enrolPage(c *fiber.Ctx, status int, secret string, failed bool) error {
	st := stateOf(c)
	uri := "otpauth://totp/" + url.PathEscape(a.cfg.Issuer) + ":" + url.PathEscape(st.user.Email) + "?" + url.Values{
		"secret": {secret}, "issuer": {a.cfg.Issuer}, "algorithm": {"SHA1"}, "digits": {"6"}, "period": {"30"}}.Encode()
	d := enrolData{Secret: secret, Grouped: group(secret), URI: uri, Failed: failed,
		Required: st.user.TOTPRequired && !st.user.TOTPEnabled}
	return a.render(c, status, "account_totp", a.page(c, "account", "auth.enrol.title", d))
}

func (a *Auth) enrolForm(c *fiber.Ctx) error {
	st := stateOf(c)
	if to := a.gate(st); to == "/admin/account" {
		return c.Redirect(to, fiber.StatusSeeOther)
	}
	if st.user.TOTPEnabled {
		return c.Redirect("/admin/account", fiber.StatusSeeOther)
	}
	secret, _, err := preferences.NewTOTPKey(a.cfg.Issuer, st.user.Email)
	if err != nil {
		return err
	}
	return a.enrolPage(c, fiber.StatusOK, secret, false)
}

func (a *Auth) enrol(c *fiber.Ctx) error {
	st := stateOf(c)
	if to := a.gate(st); to == "/admin/account" {
		return c.Redirect(to, fiber.StatusSeeOther)
	}
	secret := strings.ToUpper(strings.ReplaceAll(c.FormValue("secret"), " ", ""))
	if len(secret) < 16 || len(secret) > 64 || strings.Trim(secret, "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567") != "" {
		return fiber.NewError(fiber.StatusBadRequest, "bad TOTP secret")
	}
	_, err := a.store.EnableTOTP(c.UserContext(), st.user.ID, secret, c.FormValue("code"))
	if errors.Is(err, preferences.ErrBadCode) {
		return a.enrolPage(c, fiber.StatusUnprocessableEntity, secret, true)
	}
	if err != nil {
		return err
	}
	return c.Redirect("/admin/account?flash=totp_on", fiber.StatusSeeOther)
}

func (a *Auth) totpOff(c *fiber.Ctx) error {
	st := stateOf(c)
	if st.user.TOTPRequired {
		return a.message(c, fiber.StatusForbidden, "auth.forbidden.title", "auth.account.totp_required")
	}
	key := accountKey(st.user.Email)
	if stop, err := a.throttled(c, key); stop {
		return err
	}
	_, err := a.store.DisableTOTP(c.UserContext(), st.user.ID, c.FormValue("password"))
	if errors.Is(err, preferences.ErrBadCredentials) {
		a.failed(c, key)
		return a.accountPage(c, fiber.StatusUnprocessableEntity, map[string]string{"totp": "auth.account.wrong"})
	}
	if err != nil {
		return err
	}
	return c.Redirect("/admin/account?flash=totp_off", fiber.StatusSeeOther)
}

func (a *Auth) setLang(c *fiber.Ctx) error {
	st := stateOf(c)
	lang := c.FormValue("lang")
	if lang != "" && lang != "en" && lang != "fr" {
		return fiber.NewError(fiber.StatusBadRequest, "unknown language")
	}
	if _, err := a.store.ChangeUserLang(c.UserContext(), st.user.ID, lang); err != nil {
		return err
	}
	if lang != "" {
		a.setCookie(c, cookieLang, lang, 0, "Strict")
	} else {
		a.clearCookie(c, cookieLang)
	}
	return c.Redirect("/admin/account?flash=lang", fiber.StatusSeeOther)
}
