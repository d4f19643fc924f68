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
	now       func() time.Time
	count     *prometheus.CounterVec
}

// NewUnsubscribe returns the handler; signer must be keyed for unsubscribe links.
func NewUnsubscribe(s *preferences.Store, tpl *templates.Renderer, signer *linktoken.Signer, campaigns CampaignStats,
	now func() time.Time, reg prometheus.Registerer) *Unsubscribe {
	count := prometheus.NewCounterVec(prometheus.CounterOpts{Name: "consentmail_unsubscribes_total",
		Help: "Subscriptions ended, by method."}, []string{"method"})
	reg.MustRegister(count)
	for _, m := range []string{"one_click", "link"} {
		count.WithLabelValues(m)
	}
	return &Unsubscribe{store: s, tpl: tpl, signer: signer, campaigns: campaigns, now: now, count: count}
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

// page shows what the link would end and an Unsubscribe button. A GET changes
// nothing: mail scanners fetch links.
func (h *Unsubscribe) page(c *fiber.Ctx) error {
	l, ok := h.link(c)
	if !ok {
		return h.render(c, fiber.StatusBadRequest, "", "invalid.title", message{Paragraphs: []string{"unsubscribe.invalid"}})
	}
	locale := h.store.SubscriberLocale(c.UserContext(), l.Subscriber)
	var lists []preferences.List
	for _, id := range l.Lists {
		if x, err := h.store.List(c.UserContext(), id); err == nil {
			lists = append(lists, x)
		}
	}
	return h.render(c, fiber.StatusOK, locale, "unsubscribe.title", message{
		Paragraphs: []string{"unsubscribe.intro"}, Lists: lists,
		Action: "/u/" + url.PathEscape(c.Params("token")), Button: "unsubscribe.button",
		LinkURL: "/p/" + linktoken.Preferences(h.signer, l.Subscriber, h.now()), LinkText: "unsubscribe.preferences"})
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
	// Whether anything changed or not (already unsubscribed, erased), the answer is
	// the same: the person is not subscribed any more.
	return h.render(c, fiber.StatusOK, h.store.SubscriberLocale(c.UserContext(), l.Subscriber), "unsubscribed.title",
		message{Paragraphs: []string{"unsubscribed.body"},
			LinkURL: "/p/" + linktoken.Preferences(h.signer, l.Subscriber, h.now()), LinkText: "unsubscribe.preferences"})
}

func (h *Unsubscribe) render(c *fiber.Ctx, status int, locale, title string, data message) error {
	return render(c, h.tpl, status, templates.Negotiate(locale, c.Get(fiber.HeaderAcceptLanguage)), "message", title, data)
}
