package pages

import (
	"bytes"
	"context"
	"errors"
	"net/url"
	"strings"
	"time"

	"github.com/gofiber/fiber/v2"
	"github.com/prometheus/client_golang/prometheus"

	"consentmail/preferences"
	"consentmail/preferences/linktoken"
	"consentmail/templates"
)

// CampaignStats is told of every unsubscribe that changed something through a link of
// a campaign; the campaign engine is one.
type CampaignStats interface {
	Unsubscribed(ctx context.Context, campaign string)
}

// Unsubscribe serves GET and POST /u/{token}: the RFC 8058 one-click unsubscribe and
// the page behind the link in every mail.
type Unsubscribe struct {
	store     *preferences.Store
	tpl       *templates.Renderer
	signer    *linktoken.Signer
	campaigns CampaignStats
	// contact is where a restricted person can write (CONSENTMAIL_CONTACT); may be "".
	contact string
	now     func() time.Time
	count   *prometheus.CounterVec
}

// NewUnsubscribe returns the handler; signer must be keyed for unsubscribe links.
// contact is the controller's or DPO's address shown to a restricted person ("" for
// none).
func NewUnsubscribe(s *preferences.Store, tpl *templates.Renderer, signer *linktoken.Signer, campaigns CampaignStats,
	contact string, now func() time.Time, reg prometheus.Registerer) *Unsubscribe {
	count := prometheus.NewCounterVec(prometheus.CounterOpts{Name: "consentmail_unsubscribes_total",
		Help: "Subscriptions ended, by method."}, []string{"method"})
	reg.MustRegister(count)
	for _, m := range []string{"one_click", "link"} {
		count.WithLabelValues(m)
	}
	return &Unsubscribe{store: s, tpl: tpl, signer: signer, campaigns: campaigns, contact: contact, now: now, count: count}
}

// Routes mounts the unsubscribe routes on r.
func (h *Unsubscribe) Routes(r fiber.Router) {
	r.Get("/u/:token", h.page)
	r.Post("/u/:token", h.unsubscribe)
}

// link reads the path's token. An expired unsubscribe link is refused like a forged
// one: after five years the person has newer mail with a fresh link.
func (h *Unsubscribe) link(c *fiber.Ctx) (linktoken.UnsubscribeLink, bool) {
	l, err := linktoken.VerifyUnsubscribe(h.signer, c.Params("token"), h.now())
	return l, err == nil
}

// page shows what the link would end and an Unsubscribe button. It names only the
// lists of the link the person is still on, says so when the processing is
// restricted (a withdrawal still goes through) and when the data was erased. A GET
// changes nothing: mail scanners fetch links.
func (h *Unsubscribe) page(c *fiber.Ctx) error {
	l, ok := h.link(c)
	if !ok {
		return h.render(c, fiber.StatusBadRequest, "", "invalid.title", message{Paragraphs: []string{"unsubscribe.invalid"}})
	}
	sub, err := h.store.Subscriber(c.UserContext(), l.Subscriber)
	if erased(sub, err) {
		return h.render(c, fiber.StatusGone, "", "erasedlink.title", message{Paragraphs: []string{"erasedlink.body"}})
	}
	if err != nil {
		return err
	}
	lang := templates.Negotiate(sub.Locale, c.Get(fiber.HeaderAcceptLanguage))
	on := map[string]bool{}
	for _, x := range sub.Subscriptions {
		on[x.List] = x.Status == preferences.SubPending || x.Status == preferences.SubConfirmed
	}
	var lists []preferences.List
	for _, id := range l.Lists {
		if x, err := h.store.List(c.UserContext(), id); err == nil && on[id] {
			x, _ = x.In(lang)
			lists = append(lists, x)
		}
	}
	centre := "/p/" + linktoken.Preferences(h.signer, l.Subscriber, h.now())
	if len(lists) == 0 {
		return h.render(c, fiber.StatusOK, sub.Locale, "unsubscribe.title", message{
			Paragraphs: []string{"unsubscribe.none"}, LinkURL: centre, LinkText: "unsubscribe.preferences"})
	}
	m := message{Paragraphs: []string{"unsubscribe.intro"}, Lists: lists,
		Action: "/u/" + url.PathEscape(c.Params("token")), Button: "unsubscribe.button",
		LinkURL: centre, LinkText: "unsubscribe.preferences"}
	if sub.Status == preferences.StatusRestricted {
		m.Paragraphs, m.Contact = []string{"unsubscribe.restricted", "unsubscribe.intro"}, h.contact
	}
	return h.render(c, fiber.StatusOK, sub.Locale, "unsubscribe.title", m)
}

// erased reports whether a link's subscriber was erased: their record says so, or is
// gone.
func erased(sub *preferences.Subscriber, err error) bool {
	return errors.Is(err, preferences.ErrNotFound) || err == nil && sub.Status == preferences.StatusErased
}

// unsubscribe ends the subscriptions at once. The RFC 8058 POST from a mail client
// (body List-Unsubscribe=One-Click) is logged as one_click, the page's button as link.
// Both answer 200 with a page, set no cookie and never redirect.
func (h *Unsubscribe) unsubscribe(c *fiber.Ctx) error {
	l, ok := h.link(c)
	if !ok {
		return h.render(c, fiber.StatusBadRequest, "", "invalid.title", message{Paragraphs: []string{"unsubscribe.invalid"}})
	}
	method := "link"
	if bytes.Contains(c.Body(), []byte("List-Unsubscribe=One-Click")) {
		method = "one_click"
	}
	details := map[string]string{}
	if l.Campaign != "" {
		details["campaign"] = l.Campaign
	}
	changed, err := h.store.Unsubscribe(c.UserContext(), preferences.UnsubscribeInput{Subscriber: l.Subscriber,
		Lists: l.Lists, Method: method, IP: c.IP(), UserAgent: strings.ToValidUTF8(c.Get(fiber.HeaderUserAgent), ""),
		Details: details})
	if err != nil && !errors.Is(err, preferences.ErrNotFound) {
		return err
	}
	if len(changed) > 0 {
		h.count.WithLabelValues(method).Add(float64(len(changed)))
		if l.Campaign != "" {
			h.campaigns.Unsubscribed(c.UserContext(), l.Campaign)
		}
	}
	// Whether anything changed or not (already unsubscribed), the answer is the
	// same: the person is not subscribed any more; an erased person is told why.
	if sub, err := h.store.Subscriber(c.UserContext(), l.Subscriber); erased(sub, err) {
		return h.render(c, fiber.StatusOK, "", "erasedlink.title", message{Paragraphs: []string{"erasedlink.body"}})
	}
	return h.render(c, fiber.StatusOK, h.store.SubscriberLocale(c.UserContext(), l.Subscriber), "unsubscribed.title",
		message{Paragraphs: []string{"unsubscribed.body"},
			LinkURL: "/p/" + linktoken.Preferences(h.signer, l.Subscriber, h.now()), LinkText: "unsubscribe.preferences"})
}

func (h *Unsubscribe) render(c *fiber.Ctx, status int, locale, title string, data message) error {
	return render(c, h.tpl, status, templates.Negotiate(locale, c.Get(fiber.HeaderAcceptLanguage)), "message", title, data)
}
