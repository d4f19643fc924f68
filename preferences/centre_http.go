package preferences

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/gofiber/fiber/v2"

	"consentmail/preferences/address"
	"consentmail/preferences/linktoken"
	"consentmail/queue"
	"consentmail/templates"
)

// Token purposes of the preference centre.
const (
	purposeData     = "data"  // a data link: export and erase, one hour
	purposeCentreUI = "pform" // the centre's forms: subscriber, two hours
)

// DataLinkTTL is how long an emailed data link works.
const DataLinkTTL = time.Hour

// centreFormTTL is how long a preference-centre page may stay open before its forms
// are refused.
const centreFormTTL = 2 * time.Hour

// DataToken returns the signed token of a data link.
func DataToken(s *linktoken.Signer, subscriber string, now time.Time) string {
	return s.Sign(purposeData, now.Add(DataLinkTTL), subscriber)
}

// Queue message kinds of the links the centre emails.
const (
	KindDataLink  = "datalink"
	KindPrefsLink = "prefslink"
)

// LinkQueue queues the centre's mail: inside a transaction (re-subscriptions) or on
// its own (links); *queue.Bolt is one.
type LinkQueue interface {
	Enqueue(ctx context.Context, msgs ...queue.Message) error
}

// CentrePages serves the preference centre (contract §2): GET/POST /p/{token}, the
// data link, the export download and the erasure with its confirmation step. A
// preference link (in every mail, long-lived, perhaps forwarded) manages
// subscriptions; only a data link (emailed on request, one hour) exports or erases.
type CentrePages struct {
	store   *Store
	pages   *templates.Renderer
	signer  *linktoken.Signer
	q       LinkQueue
	enqueue EnqueueTx // a fresh double opt-in for lists ticked again
	now     func() time.Time
}

// NewCentrePages returns the centre; signer must be keyed for unsubscribe links (the
// key that signs the preference links in mail).
func NewCentrePages(s *Store, pages *templates.Renderer, signer *linktoken.Signer, q LinkQueue, enqueue EnqueueTx,
	now func() time.Time) *CentrePages {
	return &CentrePages{store: s, pages: pages, signer: signer, q: q, enqueue: enqueue, now: now}
}

// Routes mounts the centre on r.
func (h *CentrePages) Routes(r fiber.Router) {
	r.Get("/p/:token", h.page)
	r.Post("/p/:token", h.save)
	r.Post("/p/:token/data-link", h.dataLink)
	r.Get("/p/:token/export", h.export)
	r.Get("/p/:token/erase", h.erasePage)
	r.Post("/p/:token/erase", h.erase)
}

// link reads the path's token: a preference link or a data link.
func (h *CentrePages) link(c *fiber.Ctx) (sub string, data, ok bool) {
	tok := c.Params("token")
	if f, _, err := h.signer.Verify(tok, purposePreferences, h.now()); err == nil && len(f) == 1 && f[0] != "" {
		return f[0], false, true
	}
	if f, _, err := h.signer.Verify(tok, purposeData, h.now()); err == nil && len(f) == 1 && f[0] != "" {
		return f[0], true, true
	}
	return "", false, false
}

// formOK checks the form token of a POST: signed for this subscriber, not expired.
func (h *CentrePages) formOK(c *fiber.Ctx, sub string) bool {
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
}

// lang is the page language: the subscriber's locale, else Accept-Language.
func (h *CentrePages) lang(c *fiber.Ctx, locale string) string {
	return templates.Negotiate(locale, c.Get(fiber.HeaderAcceptLanguage))
}

func (h *CentrePages) render(c *fiber.Ctx, status int, lang, name, title string, data any) error {
	var buf bytes.Buffer
	if err := h.pages.Page(&buf, lang, name, title, data); err != nil {
		return err
	}
	c.Set(fiber.HeaderContentType, fiber.MIMETextHTMLCharsetUTF8)
	c.Set(fiber.HeaderCacheControl, "no-store")
	return c.Status(status).Send(buf.Bytes())
}

func (h *CentrePages) message(c *fiber.Ctx, status int, locale, title string, paragraphs ...string) error {
	return h.render(c, status, h.lang(c, locale), "message", title, unsubscribeData{Paragraphs: paragraphs})
}

func (h *CentrePages) invalid(c *fiber.Ctx) error {
	return h.message(c, fiber.StatusBadRequest, "", "invalid.title", "centre.invalid")
}

// open returns the subscriber behind a link, or false (and has answered) when the
// link cannot be used.
func (h *CentrePages) open(c *fiber.Ctx) (*Subscriber, bool, bool, error) {
	id, data, ok := h.link(c)
	if !ok {
		return nil, false, false, h.invalid(c)
	}
	sub, err := h.store.Subscriber(c.UserContext(), id)
	if errors.Is(err, ErrNotFound) || err == nil && sub.Status == StatusErased {
		return nil, false, false, h.invalid(c)
	}
	if err != nil {
		return nil, false, false, err
	}
	return sub, data, true, nil
}

func (h *CentrePages) page(c *fiber.Ctx) error {
	sub, data, ok, err := h.open(c)
	if !ok {
		return err
	}
	return h.show(c, fiber.StatusOK, sub, data, nil)
}

// show renders the centre for sub with notices (catalog keys).
func (h *CentrePages) show(c *fiber.Ctx, status int, sub *Subscriber, data bool, notice []string) error {
	base := "/p/" + url.PathEscape(c.Params("token"))
	d := centreData{Email: address.Mask(sub.Email), Name: sub.Name, Locale: sub.Locale, Tracking: sub.Tracking, Notice: notice,
		Action: base, FormToken: h.signer.Sign(purposeCentreUI, h.now().Add(centreFormTTL), sub.ID),
		DataLink: data, DataLinkAction: base + "/data-link", ExportURL: base + "/export", EraseURL: base + "/erase"}
	if d.Locale == "" {
		d.Locale = h.lang(c, "")
	}
	d.Lists = centreLists(h.store.AllLists(), sub)
	return h.render(c, status, h.lang(c, sub.Locale), "centre", "centre.title", d)
}

// centreLists are the lists the centre shows, with the subscriber's state: those they
// have or had, and the public ones.
func centreLists(all []List, sub *Subscriber) []centreList {
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
		out = append(out, centreList{ID: l.ID, Name: l.Name, Purpose: l.Purpose,
			On: st == SubConfirmed || st == SubPending, Pending: st == SubPending})
	}
	return out
}

// save applies the form: lists ticked and unticked, tracking, name, language.
func (h *CentrePages) save(c *fiber.Ctx) error {
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
	in := PreferenceChange{Subscriber: sub.ID, Method: "preference_centre", Actor: "subscriber", IP: c.IP(),
		UserAgent: strings.ToValidUTF8(c.Get(fiber.HeaderUserAgent), "")}
	for _, l := range centreLists(h.store.AllLists(), sub) {
		switch {
		case ticked[l.ID] && !l.On:
			in.Subscribe = append(in.Subscribe, l.ID)
		case !ticked[l.ID] && l.On:
			in.Unsubscribe = append(in.Unsubscribe, l.ID)
		}
	}
	tracking := c.FormValue("tracking") == "yes"
	in.Tracking = &tracking
	name := strings.TrimSpace(c.FormValue("name"))
	if len(name) > MaxNameBytes || strings.ContainsAny(name, "\r\n\x00") {
		name = sub.Name
	}
	in.Name = &name
	// With no language stored, the select showed the browser's: that is not a choice.
	if loc := c.FormValue("locale"); slices.Contains(templates.Languages, loc) && (sub.Locale != "" || loc != h.lang(c, "")) {
		in.Locale = &loc
	}
	res, err := h.store.ChangePreferences(c.UserContext(), in, h.enqueue)
	if errors.Is(err, ErrStatus) {
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

// linkMail is the body of KindDataLink and KindPrefsLink messages.
type linkMail struct {
	Subscriber string `json:"subscriber"`
}

// dataLink emails a data link; the page says so whatever happens, so that it reveals
// nothing.
func (h *CentrePages) dataLink(c *fiber.Ctx) error {
	sub, data, ok, err := h.open(c)
	if !ok {
		return err
	}
	if !h.formOK(c, sub.ID) {
		return h.show(c, fiber.StatusBadRequest, sub, data, []string{"centre.form_expired"})
	}
	if err := QueueLink(c.UserContext(), h.q, KindDataLink, sub.ID); err != nil {
		return err
	}
	return h.message(c, fiber.StatusOK, sub.Locale, "datalinksent.title", "datalinksent.body")
}

// QueueLink queues a mail with a data link or a preference link for subscriber.
func QueueLink(ctx context.Context, q LinkQueue, kind, subscriber string) error {
	body, err := json.Marshal(linkMail{Subscriber: subscriber})
	if err != nil {
		return err
	}
	return q.Enqueue(ctx, queue.Message{Kind: kind, Priority: queue.High, Body: body})
}

// dataOnly answers 403 with an explanation unless the link is a data link.
func (h *CentrePages) dataOnly(c *fiber.Ctx) (*Subscriber, bool, error) {
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
func (h *CentrePages) export(c *fiber.Ctx) error {
	sub, ok, err := h.dataOnly(c)
	if !ok {
		return err
	}
	doc, err := h.store.ExportSubscriber(c.UserContext(), sub.ID, "subscriber", nil)
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
func (h *CentrePages) erasePage(c *fiber.Ctx) error {
	sub, ok, err := h.dataOnly(c)
	if !ok {
		return err
	}
	return h.showErase(c, fiber.StatusOK, sub)
}

func (h *CentrePages) showErase(c *fiber.Ctx, status int, sub *Subscriber) error {
	base := "/p/" + url.PathEscape(c.Params("token"))
	return h.render(c, status, h.lang(c, sub.Locale), "erase", "erase.title", eraseData{Action: base + "/erase", Back: base,
		FormToken: h.signer.Sign(purposeCentreUI, h.now().Add(centreFormTTL), sub.ID)})
}

// erase erases once the confirmation box is ticked on a fresh form.
func (h *CentrePages) erase(c *fiber.Ctx) error {
	sub, ok, err := h.dataOnly(c)
	if !ok {
		return err
	}
	if !h.formOK(c, sub.ID) || c.FormValue("confirm") != "yes" {
		return h.showErase(c, fiber.StatusBadRequest, sub)
	}
	locale := sub.Locale
	if _, err := NewEraser(h.store, nil, nil).Erase(c.UserContext(), sub.ID, "subscriber"); err != nil && !errors.Is(err, ErrErased) {
		return err
	}
	return h.message(c, fiber.StatusOK, locale, "erased.title", "erased.body")
}
