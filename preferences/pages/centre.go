package pages

import (
	"context"
	"encoding/json"
	"errors"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/gofiber/fiber/v2"

	"consentmail/preferences"
	"consentmail/preferences/address"
	"consentmail/preferences/linktoken"
	"consentmail/templates"
)

// Token purpose of the centre's forms: bound to the subscriber, two hours.
const purposeCentreUI = "pform"

// centreFormTTL is how long a preference-centre page may stay open before its forms
// are refused.
const centreFormTTL = 2 * time.Hour

// DataLinks queues the mail of a data link; *linkmail.Links is one.
type DataLinks interface {
	QueueDataLink(ctx context.Context, subscriber string) error
}

// Centre serves the preference centre: GET/POST /p/{token}, the data link, the export
// download and the erasure with its confirmation step.
type Centre struct {
	store   *preferences.Store
	tpl     *templates.Renderer
	signer  *linktoken.Signer
	links   DataLinks
	enqueue preferences.EnqueueTx // a fresh double opt-in for lists ticked again
	eraser  Eraser
	// history is the campaigns part of the export, given to every export.
	history preferences.CampaignHistory
	// contact is where a restricted person can write (CONSENTMAIL_CONTACT); may be "".
	contact string
	now     func() time.Time
}

// NewCentre returns the centre; signer must be keyed for unsubscribe links (the key
// that signs the preference links in mail). contact is the controller's or DPO's
// address shown to a restricted person ("" for none).
func NewCentre(s *preferences.Store, tpl *templates.Renderer, signer *linktoken.Signer, links DataLinks,
	enqueue preferences.EnqueueTx, eraser Eraser, history preferences.CampaignHistory, contact string,
	now func() time.Time) *Centre {
	return &Centre{store: s, tpl: tpl, signer: signer, links: links, enqueue: enqueue, eraser: eraser, history: history,
		contact: contact, now: now}
}

// Routes mounts the centre on r.
func (h *Centre) Routes(r fiber.Router) {
	r.Get("/p/:token", h.page)
	r.Post("/p/:token", h.save)
	r.Post("/p/:token/data-link", h.dataLink)
	r.Get("/p/:token/export", h.export)
	r.Get("/p/:token/erase", h.erasePage)
	r.Post("/p/:token/erase", h.erase)
}

// link reads the path's token: a preference link or a data link.
func (h *Centre) link(c *fiber.Ctx) (sub string, data, ok bool) {
	tok := c.Params("token")
	if sub, err := linktoken.VerifyPreferences(h.signer, tok, h.now()); err == nil {
		return sub, false, true
	}
	if sub, err := linktoken.VerifyData(h.signer, tok, h.now()); err == nil {
		return sub, true, true
	}
	return "", false, false
}

// formToken signs the forms of a page for sub.
func (h *Centre) formToken(sub string) string {
	return h.signer.Sign(purposeCentreUI, h.now().Add(centreFormTTL), sub)
}

// formOK checks the form token of a POST: signed for this subscriber, not expired.
func (h *Centre) formOK(c *fiber.Ctx, sub string) bool {
	f, _, err := h.signer.Verify(c.FormValue("form_token"), purposeCentreUI, h.now())
	return err == nil && len(f) == 1 && f[0] == sub
}

type centreList struct {
	ID, Name, Purpose string
	On, Pending       bool
}

type centreData struct {
	Email, Name, Locale string
	Tracking            bool
	Lists               []centreList
	Notice              []string
	Action              string
	FormToken           string
	DataLink            bool
	DataLinkAction      string
	ExportURL, EraseURL string
	// Restricted: the processing is restricted; only withdrawals are taken, and the
	// page names Contact.
	Restricted bool
	Contact    string
}

// lang is the page language: the subscriber's locale, else Accept-Language.
func (h *Centre) lang(c *fiber.Ctx, locale string) string {
	return templates.Negotiate(locale, c.Get(fiber.HeaderAcceptLanguage))
}

func (h *Centre) message(c *fiber.Ctx, status int, locale, title string, paragraphs ...string) error {
	return render(c, h.tpl, status, h.lang(c, locale), "message", title, message{Paragraphs: paragraphs})
}

func (h *Centre) invalid(c *fiber.Ctx) error {
	return h.message(c, fiber.StatusBadRequest, "", "invalid.title", "centre.invalid")
}

// open returns the subscriber behind a link, or false (and has answered) when the
// link cannot be used.
func (h *Centre) open(c *fiber.Ctx) (*preferences.Subscriber, bool, bool, error) {
	id, data, ok := h.link(c)
	if !ok {
		return nil, false, false, h.invalid(c)
	}
	sub, err := h.store.Subscriber(c.UserContext(), id)
	if erased(sub, err) {
		return nil, false, false, h.message(c, fiber.StatusGone, "", "erasedlink.title", "erasedlink.body")
	}
	if err != nil {
		return nil, false, false, err
	}
	return sub, data, true, nil
}

func (h *Centre) page(c *fiber.Ctx) error {
	sub, data, ok, err := h.open(c)
	if !ok {
		return err
	}
	return h.show(c, fiber.StatusOK, sub, data, nil)
}

// show renders the centre for sub with notices (catalog keys).
func (h *Centre) show(c *fiber.Ctx, status int, sub *preferences.Subscriber, data bool, notice []string) error {
	base := "/p/" + url.PathEscape(c.Params("token"))
	d := centreData{Email: address.Mask(sub.Email), Name: sub.Name, Locale: sub.Locale, Tracking: sub.Tracking,
		Notice: notice, Action: base, FormToken: h.formToken(sub.ID),
		DataLink: data, DataLinkAction: base + "/data-link", ExportURL: base + "/export", EraseURL: base + "/erase"}
	if sub.Status == preferences.StatusRestricted {
		d.Restricted, d.Contact = true, h.contact
	}
	if d.Locale == "" {
		d.Locale = h.lang(c, "")
	}
	d.Lists = centreLists(h.store.AllLists(), sub, h.lang(c, sub.Locale))
	return render(c, h.tpl, status, h.lang(c, sub.Locale), "centre", "centre.title", d)
}

// centreLists are the lists the centre shows, with the subscriber's state, in lang:
// those they have or had, and the public ones.
func centreLists(all []preferences.List, sub *preferences.Subscriber, lang string) []centreList {
	state := make(map[string]string, len(sub.Subscriptions))
	for _, x := range sub.Subscriptions {
		state[x.List] = x.Status
	}
	var out []centreList
	for _, l := range all {
		st, had := state[l.ID]
		if !had && !l.Public {
			continue
		}
		l, _ = l.In(lang)
		out = append(out, centreList{ID: l.ID, Name: l.Name, Purpose: l.Purpose,
			On: st == preferences.SubConfirmed || st == preferences.SubPending, Pending: st == preferences.SubPending})
	}
	return out
}

// save applies the form: lists ticked and unticked, tracking, name, language.
func (h *Centre) save(c *fiber.Ctx) error {
	sub, data, ok, err := h.open(c)
	if !ok {
		return err
	}
	if !h.formOK(c, sub.ID) {
		return h.show(c, fiber.StatusBadRequest, sub, data, []string{"centre.form_expired"})
	}
	args := c.Request().PostArgs()
	ticked := map[string]bool{}
	for _, v := range args.PeekMulti("list") {
		ticked[string(v)] = true
	}
	in := preferences.PreferenceChange{Subscriber: sub.ID, Method: "preference_centre", Actor: "subscriber", IP: c.IP(),
		UserAgent: strings.ToValidUTF8(c.Get(fiber.HeaderUserAgent), "")}
	for _, l := range centreLists(h.store.AllLists(), sub, "") {
		switch {
		case ticked[l.ID] && !l.On:
			in.Subscribe = append(in.Subscribe, l.ID)
		case !ticked[l.ID] && l.On:
			in.Unsubscribe = append(in.Unsubscribe, l.ID)
		}
	}
	if sub.Status == preferences.StatusRestricted {
		return h.withdraw(c, sub, data, in.Unsubscribe)
	}
	tracking := c.FormValue("tracking") == "yes"
	in.Tracking = &tracking
	name := strings.TrimSpace(c.FormValue("name"))
	if len(name) > preferences.MaxNameBytes || strings.ContainsAny(name, "\r\n\x00") {
		name = sub.Name
	}
	in.Name = &name
	// With no language stored, the select showed the browser's: that is not a choice.
	if loc := c.FormValue("locale"); slices.Contains(templates.Languages, loc) && (sub.Locale != "" || loc != h.lang(c, "")) {
		in.Locale = &loc
	}
	res, err := h.store.ChangePreferences(c.UserContext(), in, h.enqueue)
	if errors.Is(err, preferences.ErrStatus) {
		return h.message(c, fiber.StatusConflict, sub.Locale, "error.title", "centre.unavailable")
	}
	if err != nil {
		return err
	}
	notice := []string{"centre.saved"}
	if len(res.Unsubscribed)+len(res.Pending)+len(res.Rectified) == 0 && res.Tracking == nil {
		notice = []string{"centre.nochange"}
	}
	if len(res.Pending) > 0 {
		notice = append(notice, "centre.saved_pending")
	}
	if sub, err = h.store.Subscriber(c.UserContext(), sub.ID); err != nil {
		return err
	}
	return h.show(c, fiber.StatusOK, sub, data, notice)
}

// withdraw takes the lists a restricted person unticked: a withdrawal of consent is
// never refused, while nothing else may change until the restriction is lifted.
func (h *Centre) withdraw(c *fiber.Ctx, sub *preferences.Subscriber, data bool, lists []string) error {
	notice := []string{"centre.nochange"}
	if len(lists) > 0 {
		changed, err := h.store.Unsubscribe(c.UserContext(), preferences.UnsubscribeInput{Subscriber: sub.ID, Lists: lists,
			Method: "preference_centre", Actor: "subscriber", IP: c.IP(),
			UserAgent: strings.ToValidUTF8(c.Get(fiber.HeaderUserAgent), "")})
		if err != nil {
			return err
		}
		if len(changed) > 0 {
			notice = []string{"centre.saved"}
		}
	}
	sub, err := h.store.Subscriber(c.UserContext(), sub.ID)
	if err != nil {
		return err
	}
	return h.show(c, fiber.StatusOK, sub, data, notice)
}

// dataLink emails a data link; the page says so whatever happens, so that it reveals
// nothing.
func (h *Centre) dataLink(c *fiber.Ctx) error {
	sub, data, ok, err := h.open(c)
	if !ok {
		return err
	}
	if !h.formOK(c, sub.ID) {
		return h.show(c, fiber.StatusBadRequest, sub, data, []string{"centre.form_expired"})
	}
	if err := h.links.QueueDataLink(c.UserContext(), sub.ID); err != nil {
		return err
	}
	return h.message(c, fiber.StatusOK, sub.Locale, "datalinksent.title", "datalinksent.body")
}

// dataOnly answers 403 with an explanation unless the link is a data link.
func (h *Centre) dataOnly(c *fiber.Ctx) (*preferences.Subscriber, bool, error) {
	sub, data, ok, err := h.open(c)
	if !ok {
		return nil, false, err
	}
	if !data {
		return nil, false, h.message(c, fiber.StatusForbidden, sub.Locale, "export.forbidden_title", "export.forbidden")
	}
	return sub, true, nil
}

// export downloads the subscriber's data: the same document as the admin export.
func (h *Centre) export(c *fiber.Ctx) error {
	sub, ok, err := h.dataOnly(c)
	if !ok {
		return err
	}
	doc, err := h.store.ExportSubscriber(c.UserContext(), sub.ID, "subscriber", h.history)
	if err != nil {
		return err
	}
	raw, err := json.MarshalIndent(doc, "", "  ")
	if err != nil {
		return err
	}
	c.Set(fiber.HeaderContentType, fiber.MIMEApplicationJSONCharsetUTF8)
	c.Set(fiber.HeaderContentDisposition, `attachment; filename="my-data.json"`)
	c.Set(fiber.HeaderCacheControl, "no-store")
	return c.Send(raw)
}

type eraseData struct {
	Action, Back, FormToken string
}

// erasePage is the explicit confirmation step before an erasure.
func (h *Centre) erasePage(c *fiber.Ctx) error {
	sub, ok, err := h.dataOnly(c)
	if !ok {
		return err
	}
	return h.showErase(c, fiber.StatusOK, sub)
}

func (h *Centre) showErase(c *fiber.Ctx, status int, sub *preferences.Subscriber) error {
	base := "/p/" + url.PathEscape(c.Params("token"))
	return render(c, h.tpl, status, h.lang(c, sub.Locale), "erase", "erase.title", eraseData{Action: base + "/erase",
		Back: base, FormToken: h.formToken(sub.ID)})
}

// erase erases once the confirmation box is ticked on a fresh form.
func (h *Centre) erase(c *fiber.Ctx) error {
	sub, ok, err := h.dataOnly(c)
	if !ok {
		return err
	}
	if !h.formOK(c, sub.ID) || c.FormValue("confirm") != "yes" {
		return h.showErase(c, fiber.StatusBadRequest, sub)
	}
	locale := sub.Locale
	_, err = h.eraser.Erase(c.UserContext(), sub.ID, "subscriber")
	switch {
	case errors.Is(err, preferences.ErrStatus): // restricted: nothing changes until it is lifted
		return h.message(c, fiber.StatusConflict, locale, "error.title", "centre.unavailable")
	case err != nil && !errors.Is(err, preferences.ErrErased) && !errors.Is(err, preferences.ErrErasureIncomplete):
		// Incomplete: the data is already unreadable; the steps left are retried.
		return err
	}
	return h.message(c, fiber.StatusOK, locale, "erased.title", "erased.body")
}
