package preferences

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/mail"
	"strings"
	"time"

	"consentmail/mailer"
	"consentmail/preferences/linktoken"
	"consentmail/queue"
	"consentmail/templates"
)

// LinkSender sends one message; *mailer.Sender is one.
type LinkSender interface {
	Send(ctx context.Context, m *mailer.Message) error
}

// LinkMailer sends the preference centre's mail from the queue: a data link
// (KindDataLink, one hour) or a preference-centre link (KindPrefsLink).
type LinkMailer struct {
	store   *Store
	pages   *templates.Renderer
	signer  *linktoken.Signer
	sender  LinkSender
	from    string
	baseURL string
	now     func() time.Time
	log     *slog.Logger
}

// NewLinkMailer returns the queue handler of both kinds; signer is keyed for
// unsubscribe links, from is CONSENTMAIL_FROM.
func NewLinkMailer(s *Store, pages *templates.Renderer, signer *linktoken.Signer, sender LinkSender, from, baseURL string,
	now func() time.Time, log *slog.Logger) *LinkMailer {
	return &LinkMailer{store: s, pages: pages, signer: signer, sender: sender, from: from,
		baseURL: strings.TrimRight(baseURL, "/"), now: now, log: log}
}

type linkMailData struct {
	Kind string // "datalink" or "prefslink": the catalog prefix of the texts
	Name string
	URL  string
}

// Handle sends one link mail. A subscriber who is gone, erased or restricted gets
// nothing (the request is acknowledged: there is nobody to write to).
func (m *LinkMailer) Handle(ctx context.Context, d queue.Delivery) error {
	var in linkMail
	if err := json.Unmarshal(d.Body, &in); err != nil || in.Subscriber == "" {
		return queue.Permanent(fmt.Errorf("link mail: bad body"))
	}
	sub, err := m.store.Subscriber(ctx, in.Subscriber)
	if errors.Is(err, ErrNotFound) || err == nil && (sub.Status == StatusErased || sub.Status == StatusRestricted) {
		return nil
	}
	if err != nil {
		return err
	}
	now := m.now()
	var token, kind string
	switch d.Kind {
	case KindDataLink:
		token, kind = DataToken(m.signer, sub.ID, now), "datalink"
	case KindPrefsLink:
		token, kind = PreferencesToken(m.signer, sub.ID, now), "prefslink"
	default:
		return queue.Permanent(fmt.Errorf("link mail: unknown kind %q", d.Kind))
	}
	lang := templates.Negotiate(sub.Locale, "")
	e, err := m.pages.Email(lang, kind, linkMailData{Kind: kind, Name: sub.Name, URL: m.baseURL + "/p/" + token})
	if err != nil {
		return queue.Permanent(err)
	}
	to := (&mail.Address{Name: sub.Name, Address: sub.Email}).String()
	err = m.sender.Send(ctx, &mailer.Message{From: m.from, To: to, Subject: e.Subject, HTML: e.HTML, Text: e.Text})
	if err != nil && !mailer.IsTemporary(err) {
		return queue.Permanent(err)
	}
	return err
}
