package optin

import (
	"bytes"
	"errors"
	"net/url"
	"strings"

	"github.com/gofiber/fiber/v2"

	"consentmail/preferences"
	"consentmail/preferences/address"
	"consentmail/preferences/linktoken"
	"consentmail/templates"
)

// messageData is the data of the generic message page.
type messageData = templates.Message

// render writes a page with the status.
func (h *Handler) render(c *fiber.Ctx, status int, lang, name, title string, data any) error {
	var buf bytes.Buffer
	if err := h.pages.Page(&buf, lang, name, title, data); err != nil {
		return err
	}
	return h.send(c, status, buf.Bytes())
}

func (h *Handler) send(c *fiber.Ctx, status int, page []byte) error {
	c.Set(fiber.HeaderContentType, fiber.MIMETextHTMLCharsetUTF8)
	c.Set(fiber.HeaderCacheControl, "no-store")
	return c.Status(status).Send(page)
}

func (h *Handler) message(c *fiber.Ctx, status int, locale, title string, paragraphs ...string) error {
	return h.render(c, status, h.lang(c, locale), "message", title, messageData{Paragraphs: paragraphs})
}

func (h *Handler) lang(c *fiber.Ctx, locale string) string {
	return templates.Negotiate(locale, c.Get(fiber.HeaderAcceptLanguage))
}

// formData is the hosted signup form.
type formData struct {
	List      preferences.List
	Action    string
	FormToken string
	Email     string
	Name      string
	Errors    map[string]string // field -> catalog key; "form" -> summary
}

func (h *Handler) publicList(c *fiber.Ctx) (preferences.List, bool, error) {
	id := c.Params("list")
	if !preferences.ValidListID(id) {
		return preferences.List{}, false, nil
	}
	l, err := h.store.List(c.UserContext(), id)
	if errors.Is(err, preferences.ErrNotFound) || err == nil && !l.Public {
		return preferences.List{}, false, nil
	}
	return l, err == nil, err
}

func (h *Handler) formPage(c *fiber.Ctx) error {
	l, ok, err := h.publicList(c)
	if err != nil {
		return err
	}
	if !ok {
		return h.message(c, fiber.StatusNotFound, "", "notfound.title", "notfound.body")
	}
	return h.renderForm(c, fiber.StatusOK, l, formData{})
}

// renderForm shows the form in the visitor's language: the list's name, purpose and
// consent text in it when the list has them. The form posts that language, so the
// signup records the text shown.
func (h *Handler) renderForm(c *fiber.Ctx, status int, l preferences.List, d formData) error {
	lang := h.lang(c, "")
	d.List, _ = l.In(lang)
	d.Action = "/subscribe/" + l.ID
	d.FormToken = h.signer.Sign(purposeForm, h.now().Add(formTokenTTL), l.ID)
	var buf bytes.Buffer
	if err := h.pages.Page(&buf, lang, "subscribe", "subscribe.title", d, d.List.Name); err != nil {
		return err
	}
	return h.send(c, status, buf.Bytes())
}

// formSignup handles the hosted form: the same rules as the API, plus a signed form
// token (forms are CSRF-safe without cookies), answered with pages.
func (h *Handler) formSignup(c *fiber.Ctx) error { return h.hostedSignup(c, true) }

// embeddedSignup handles a form pasted into another website (the snippet the admin
// app gives): it cannot carry the hosted form's signed token, and needs none: a
// signup is public (the API takes one from anyone) and only a deliberate click on the
// emailed link confirms it. Everything else is the hosted form's: the honeypot, the
// rate limit, the consent box, the answer pages.
func (h *Handler) embeddedSignup(c *fiber.Ctx) error { return h.hostedSignup(c, false) }

// hostedSignup answers a form's signup with pages; withToken requires the hosted
// form's signed token.
func (h *Handler) hostedSignup(c *fiber.Ctx, withToken bool) error {
	l, ok, err := h.publicList(c)
	if err != nil {
		return err
	}
	if !ok {
		return h.message(c, fiber.StatusNotFound, "", "notfound.title", "notfound.body")
	}
	if len(c.Body()) > MaxBody {
		return h.message(c, fiber.StatusRequestEntityTooLarge, "", "error.title", "form.invalid")
	}
	// As the API: under overload refused before the signup is validated or written.
	// The person gets the form back (503, Retry-After) with what they typed and the
	// reason; the consent box is left for them to tick again.
	if !h.admit(c) {
		req, _, _ := decodeFormSignup(c.Body())
		return h.renderForm(c, fiber.StatusServiceUnavailable, l, formData{Email: req.Email, Name: req.Name,
			Errors: map[string]string{"form": "form.busy"}})
	}
	defer h.release()
	req, _, err := decodeFormSignup(c.Body())
	if err != nil {
		return h.message(c, fiber.StatusBadRequest, "", "error.title", "form.invalid")
	}
	req.Lists = []string{l.ID}
	if withToken {
		fields, _, err := h.signer.Verify(req.FormToken, purposeForm, h.now())
		if err != nil || len(fields) != 1 || fields[0] != l.ID {
			return h.renderForm(c, fiber.StatusBadRequest, l, formData{Email: req.Email, Name: req.Name,
				Errors: map[string]string{"form": "form.expired"}})
		}
	}
	if req.Honeypot != "" {
		h.metrics.signups.WithLabelValues("honeypot").Inc()
		return h.message(c, fiber.StatusAccepted, "", "subscribed.title", "subscribed.body")
	}
	if req.Locale == "" {
		req.Locale = h.lang(c, "")
	}
	in, bad := h.validate(c, req, nil)
	if bad != nil {
		h.metrics.signups.WithLabelValues("invalid").Inc()
		errs := map[string]string{"form": "form.invalid"}
		for field, key := range map[string]string{"email": "field.email", "name": "field.name", "consent": "field.consent"} {
			if _, ok := bad[field]; ok {
				errs[field] = key
			}
		}
		return h.renderForm(c, fiber.StatusUnprocessableEntity, l, formData{Email: req.Email, Name: req.Name, Errors: errs})
	}
	if err := h.signup(c, in); err != nil {
		return err
	}
	return h.message(c, fiber.StatusAccepted, in.Locale, "subscribed.title", "subscribed.body")
}

// confirmData is the confirmation page.
type confirmData struct {
	Email  string
	Lists  []preferences.List
	Action string
}

// optinToken decodes a confirmation token's fields: subscriber, nonce, lists.
func (h *Handler) optinToken(c *fiber.Ctx) (preferences.OptinRequest, error) {
	token := c.Params("token")
	fields, _, err := h.signer.Verify(token, purposeConfirm, h.now())
	if len(fields) != 3 {
		return preferences.OptinRequest{}, linktoken.ErrInvalid
	}
	req := preferences.OptinRequest{Subscriber: fields[0], Nonce: fields[1], Lists: strings.Split(fields[2], ",")}
	return req, err
}

// tokenError answers a bad confirmation link: 410 with a renewal button when it is
// authentic but expired, 400 otherwise.
func (h *Handler) tokenError(c *fiber.Ctx, err error, token string, req preferences.OptinRequest) error {
	if errors.Is(err, linktoken.ErrExpired) {
		locale := h.store.SubscriberLocale(c.UserContext(), req.Subscriber)
		return h.render(c, fiber.StatusGone, h.lang(c, locale), "message", "expired.title", messageData{
			Paragraphs: []string{"expired.body"}, Action: "/confirm/" + url.PathEscape(token) + "/renew", Button: "expired.button"})
	}
	return h.message(c, fiber.StatusBadRequest, "", "invalid.title", "invalid.body")
}

// confirmPage shows what a click would confirm. It never changes anything.
func (h *Handler) confirmPage(c *fiber.Ctx) error {
	token := c.Params("token")
	req, err := h.optinToken(c)
	if err != nil {
		return h.tokenError(c, err, token, req)
	}
	p, err := h.store.PendingOptin(c.UserContext(), req)
	if err != nil {
		return err
	}
	switch {
	case len(p.Lists) > 0:
		lang := h.lang(c, p.Subscriber.Locale)
		return h.render(c, fiber.StatusOK, lang, "confirm", "confirm.title", confirmData{
			Email: address.Mask(p.Subscriber.Email), Lists: localized(p.Lists, lang), Action: "/confirm/" + url.PathEscape(token)})
	case len(p.Confirmed) > 0:
		return h.message(c, fiber.StatusOK, p.Subscriber.Locale, "already.title", "already.body")
	}
	return h.message(c, fiber.StatusGone, h.store.SubscriberLocale(c.UserContext(), req.Subscriber), "stale.title", "stale.body")
}

// listsOf returns the lists with these ids, in lang.
func (h *Handler) listsOf(c *fiber.Ctx, ids []string, lang string) []preferences.List {
	var out []preferences.List
	for _, id := range ids {
		if l, err := h.store.List(c.UserContext(), id); err == nil {
			out = append(out, l)
		}
	}
	return localized(out, lang)
}

// localized returns the lists as a person reading lang sees them.
func localized(lists []preferences.List, lang string) []preferences.List {
	out := make([]preferences.List, len(lists))
	for i, l := range lists {
		out[i], _ = l.In(lang)
	}
	return out
}

// confirm is the deliberate click.
func (h *Handler) confirm(c *fiber.Ctx) error {
	req, err := h.optinToken(c)
	if err != nil {
		return h.tokenError(c, err, c.Params("token"), req)
	}
	res, err := h.store.Confirm(c.UserContext(), preferences.ConfirmInput{Subscriber: req.Subscriber, Lists: req.Lists,
		Nonce: req.Nonce, IP: c.IP(), UserAgent: truncate(strings.ToValidUTF8(c.Get(fiber.HeaderUserAgent), ""), maxUserAgent)})
	locale := h.store.SubscriberLocale(c.UserContext(), req.Subscriber)
	if errors.Is(err, preferences.ErrStaleOptin) || errors.Is(err, preferences.ErrNotFound) {
		return h.message(c, fiber.StatusGone, locale, "stale.title", "stale.body")
	}
	if err != nil {
		return err
	}
	if len(res.Confirmed) == 0 {
		return h.message(c, fiber.StatusOK, locale, "already.title", "already.body")
	}
	h.metrics.confirmations.Add(float64(len(res.Confirmed)))
	lang := h.lang(c, locale)
	return h.render(c, fiber.StatusOK, lang, "message", "confirmed.title", messageData{
		Paragraphs: []string{"confirmed.body"}, Lists: h.listsOf(c, res.Confirmed, lang), After: []string{"confirmed.unsubscribe"}})
}

// renew sends a fresh link for an expired one (authentic tokens only).
func (h *Handler) renew(c *fiber.Ctx) error {
	req, err := h.optinToken(c)
	if err != nil && !errors.Is(err, linktoken.ErrExpired) {
		return h.message(c, fiber.StatusBadRequest, "", "invalid.title", "invalid.body")
	}
	if _, err := h.store.RenewOptin(c.UserContext(), req.Subscriber, req.Lists, h.EnqueueOptin); err != nil {
		return err
	}
	return h.message(c, fiber.StatusAccepted, h.store.SubscriberLocale(c.UserContext(), req.Subscriber), "renewed.title", "renewed.body")
}
