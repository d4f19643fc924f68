package preferences

import (
	"bytes"
	"context"
	"errors"
	"net/url"
	"strings"
	"time"

	"github.com/gofiber/fiber/v2"
	"github.com/prometheus/client_golang/prometheus"

	"consentmail/preferences/linktoken"
	"consentmail/templates"
)

// Token purpose of unsubscribe links (List-Unsubscribe and the footer link).
const purposeUnsubscribe = "unsubscribe"

// UnsubscribeLinkTTL is how long an unsubscribe link in a mail keeps working: longer
// than any list's default retention, so an old mail can always withdraw consent.
const UnsubscribeLinkTTL = 5 * 365 * 24 * time.Hour

// UnsubscribeToken returns the signed token of an unsubscribe link for one
// subscriber, the lists a mail was sent for, and the campaign (may be empty).
func UnsubscribeToken(s *linktoken.Signer, subscriber string, lists []string, campaign string, now time.Time) string {
	return s.Sign(purposeUnsubscribe, now.Add(UnsubscribeLinkTTL), subscriber, strings.Join(lists, ","), campaign)
}

// UnsubscribePages serves GET and POST /u/{token}: the RFC 8058 one-click
// unsubscribe and the page behind the link in every mail.
type UnsubscribePages struct {
	store  *Store
	pages  *templates.Renderer
	signer *linktoken.Signer
	now    func() time.Time
	count  *prometheus.CounterVec

	onCampaign func(ctx context.Context, campaign string)
}

// OnCampaignUnsubscribe sets a function told of every unsubscribe that changed
// something through a link of a campaign (for the campaign's stats).
func (h *UnsubscribePages) OnCampaignUnsubscribe(f func(ctx context.Context, campaign string)) {
	h.onCampaign = f
}

// NewUnsubscribePages returns the handler; signer must be keyed for unsubscribe links.
func NewUnsubscribePages(s *Store, pages *templates.Renderer, signer *linktoken.Signer, now func() time.Time,
	reg prometheus.Registerer) *UnsubscribePages {
	count := prometheus.NewCounterVec(prometheus.CounterOpts{Name: "consentmail_unsubscribes_total",
		Help: "Subscriptions ended, by method."}, []string{"method"})
	reg.MustRegister(count)
	for _, m := range []string{"one_click", "link"} {
		count.WithLabelValues(m)
	}
	return &UnsubscribePages{store: s, pages: pages, signer: signer, now: now, count: count}
}

// Routes mounts the unsubscribe routes on r.
func (h *UnsubscribePages) Routes(r fiber.Router) {
	r.Get("/u/:token", h.page)
	r.Post("/u/:token", h.unsubscribe)
}

type unsubscribeLink struct {
	Subscriber string
	Lists      []string
	Campaign   string
}

func (h *UnsubscribePages) link(c *fiber.Ctx) (unsubscribeLink, bool) {
	f, _, err := h.signer.Verify(c.Params("token"), purposeUnsubscribe, h.now())
	if err != nil || len(f) != 3 || f[0] == "" {
		// An expired unsubscribe link is refused like a forged one: after five years
		// the person has newer mail with a fresh link.
		return unsubscribeLink{}, false
	}
	l := unsubscribeLink{Subscriber: f[0], Campaign: f[2]}
	if f[1] != "" {
		l.Lists = strings.Split(f[1], ",")
	}
	return l, true
}

// unsubscribeData is the data of the unsubscribe page.
type unsubscribeData = templates.Message

// page shows what the link would end and an Unsubscribe button. A GET changes
// nothing: mail scanners fetch links.
func (h *UnsubscribePages) page(c *fiber.Ctx) error {
	l, ok := h.link(c)
	if !ok {
		return h.render(c, fiber.StatusBadRequest, "", "invalid.title", unsubscribeData{Paragraphs: []string{"unsubscribe.invalid"}})
	}
	locale := h.store.SubscriberLocale(c.UserContext(), l.Subscriber)
	var lists []List
	for _, id := range l.Lists {
		if x, err := h.store.List(c.UserContext(), id); err == nil {
			lists = append(lists, x)
		}
	}
	return h.render(c, fiber.StatusOK, locale, "unsubscribe.title", unsubscribeData{
		Paragraphs: []string{"unsubscribe.intro"}, Lists: lists,
		Action: "/u/" + url.PathEscape(c.Params("token")), Button: "unsubscribe.button",
		LinkURL: "/p/" + PreferencesToken(h.signer, l.Subscriber, h.now()), LinkText: "unsubscribe.preferences"})
}

// unsubscribe ends the subscriptions at once. The RFC 8058 POST from a mail client
// (body List-Unsubscribe=One-Click) is logged as one_click, the page's button as link.
// Both answer 200 with a page, set no cookie and never redirect.
func (h *UnsubscribePages) unsubscribe(c *fiber.Ctx) error {
	l, ok := h.link(c)
	if !ok {
		return h.render(c, fiber.StatusBadRequest, "", "invalid.title", unsubscribeData{Paragraphs: []string{"unsubscribe.invalid"}})
	}
	method := "link"
	if bytes.Contains(c.Body(), []byte("List-Unsubscribe=One-Click")) {
		method = "one_click"
	}
	details := map[string]string{}
	if l.Campaign != "" {
		details["campaign"] = l.Campaign
	}
	changed, err := h.store.Unsubscribe(c.UserContext(), UnsubscribeInput{Subscriber: l.Subscriber, Lists: l.Lists,
		Method: method, IP: c.IP(), UserAgent: strings.ToValidUTF8(c.Get(fiber.HeaderUserAgent), ""), Details: details})
	if err != nil && !errors.Is(err, ErrNotFound) {
		return err
	}
	if len(changed) > 0 {
		h.count.WithLabelValues(method).Add(float64(len(changed)))
		if l.Campaign != "" && h.onCampaign != nil {
			h.onCampaign(c.UserContext(), l.Campaign)
		}
	}
	// Whether anything changed or not (already unsubscribed, erased), the answer is
	// the same: the person is not subscribed any more.
	return h.render(c, fiber.StatusOK, h.store.SubscriberLocale(c.UserContext(), l.Subscriber), "unsubscribed.title",
		unsubscribeData{Paragraphs: []string{"unsubscribed.body"},
			LinkURL: "/p/" + PreferencesToken(h.signer, l.Subscriber, h.now()), LinkText: "unsubscribe.preferences"})
}

func (h *UnsubscribePages) render(c *fiber.Ctx, status int, locale, title string, data unsubscribeData) error {
	var buf bytes.Buffer
	lang := templates.Negotiate(locale, c.Get(fiber.HeaderAcceptLanguage))
	if err := h.pages.Page(&buf, lang, "message", title, data); err != nil {
		return err
	}
	c.Set(fiber.HeaderContentType, fiber.MIMETextHTMLCharsetUTF8)
	c.Set(fiber.HeaderCacheControl, "no-store")
	return c.Status(status).Send(buf.Bytes())
}

// Token purpose of preference-centre links (the footer of every campaign mail).
const purposePreferences = "preferences"

// PreferencesToken returns the signed token of a preference-centre link for one
// subscriber, valid as long as an unsubscribe link. It may manage subscriptions, never
// hand out or erase data (that takes a short-lived data link).
func PreferencesToken(s *linktoken.Signer, subscriber string, now time.Time) string {
	return s.Sign(purposePreferences, now.Add(UnsubscribeLinkTTL), subscriber)
}
