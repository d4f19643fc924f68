// Package linkmail mails subscribers the links they ask for: a data link (export and
// erasure, one hour) from the preference centre, or a fresh preference-centre link
// from POST /api/v1/preferences/link. Requests are queued (Links) and sent by the
// queue handler (Mailer) of the process that holds the store.
//
// Its queue messages carry a subscriber id, or for a preference link asked for by
// address the address's blind index, and nothing else; ForSubscriber tells the
// erasure which of them to drop, so no other package reads their bodies.
//
// No oracle, no mail-bombing: a request for a preference link by address does the
// same work whether the address is known or not (one queued message carrying its
// blind index); the queue handler looks it up, off the request path. Each subscriber
// gets at most one mail of each kind per preferences.LinkMailInterval, however often
// it is asked for, recorded durably in the store.
package linkmail

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
	"consentmail/preferences"
	"consentmail/preferences/linktoken"
	"consentmail/queue"
	"consentmail/templates"
)

// Queue message kinds of link mail.
const (
	KindDataLink  = "datalink"
	KindPrefsLink = "prefslink"
)

// body is the body of KindDataLink and KindPrefsLink messages: a subscriber, or the
// blind index of an address (preferences.Store.EmailIndex) that may be nobody's.
type body struct {
	Subscriber string `json:"subscriber,omitempty"`
	Index      []byte `json:"index,omitempty"`
}

// ForSubscriber reports whether m is link mail for subscriber.
func ForSubscriber(m queue.Message, subscriber string) bool {
	if m.Kind != KindDataLink && m.Kind != KindPrefsLink {
		return false
	}
	var b body
	return json.Unmarshal(m.Body, &b) == nil && b.Subscriber == subscriber
}

// Enqueuer queues messages on their own (not in a store transaction); *queue.Bolt is one.
type Enqueuer interface {
	Enqueue(ctx context.Context, msgs ...queue.Message) error
}

// Links queues link mail; the subscriber pages and the signup API take it through
// interfaces of their own.
type Links struct{ q Enqueuer }

// NewLinks returns Links queueing on q, the queue of the process that holds the store.
func NewLinks(q Enqueuer) *Links { return &Links{q: q} }

// QueueDataLink queues a mail with a data link for subscriber.
func (l *Links) QueueDataLink(ctx context.Context, subscriber string) error {
	return l.queue(ctx, KindDataLink, subscriber)
}

// QueuePreferencesLink queues a mail with a preference-centre link for whoever has
// the address of blind index emailIndex (preferences.Store.EmailIndex), if anyone:
// the same work whether the address is known or not.
func (l *Links) QueuePreferencesLink(ctx context.Context, emailIndex []byte) error {
	return l.enqueue(ctx, KindPrefsLink, body{Index: emailIndex})
}

func (l *Links) queue(ctx context.Context, kind, subscriber string) error {
	return l.enqueue(ctx, kind, body{Subscriber: subscriber})
}

func (l *Links) enqueue(ctx context.Context, kind string, in body) error {
	b, err := json.Marshal(in)
	if err != nil {
		return err
	}
	return l.q.Enqueue(ctx, queue.Message{Kind: kind, Priority: queue.High, Body: b})
}

// Sender sends one message; *mailer.Sender is one.
type Sender interface {
	Send(ctx context.Context, m *mailer.Message) error
}

// Mailer is the queue handler of both kinds.
type Mailer struct {
	store   *preferences.Store
	tpl     *templates.Renderer
	signer  *linktoken.Signer
	sender  Sender
	from    string
	baseURL string
	now     func() time.Time
	log     *slog.Logger
}

// NewMailer returns the queue handler of both kinds; signer is keyed for unsubscribe
// links, from is CONSENTMAIL_FROM.
func NewMailer(s *preferences.Store, tpl *templates.Renderer, signer *linktoken.Signer, sender Sender, from, baseURL string,
	now func() time.Time, log *slog.Logger) *Mailer {
	return &Mailer{store: s, tpl: tpl, signer: signer, sender: sender, from: from,
		baseURL: strings.TrimRight(baseURL, "/"), now: now, log: log}
}

type mailData struct {
	Kind string // "datalink" or "prefslink": the catalog prefix of the texts
	Name string
	URL  string
}

// Handle sends one link mail. An address nobody has, and a subscriber who is gone,
// erased or restricted, get nothing (the request is acknowledged: there is nobody to
// write to); so does a subscriber mailed that kind of link less than
// preferences.LinkMailInterval ago.
func (m *Mailer) Handle(ctx context.Context, d queue.Delivery) error {
	var in body
	if err := json.Unmarshal(d.Body, &in); err != nil || in.Subscriber == "" && len(in.Index) == 0 {
		return queue.Permanent(fmt.Errorf("link mail: bad body"))
	}
	if in.Subscriber == "" {
		id, ok := m.store.LookupEmailIndex(ctx, in.Index)
		if !ok {
			return nil
		}
		in.Subscriber = id
	}
	sub, err := m.store.Subscriber(ctx, in.Subscriber)
	if errors.Is(err, preferences.ErrNotFound) || err == nil &&
		(sub.Status == preferences.StatusErased || sub.Status == preferences.StatusRestricted) {
		return nil
	}
	if err != nil {
		return err
	}
	turn, err := m.store.TakeMailTurn(ctx, d.Kind, sub.ID, d.ID, preferences.LinkMailInterval)
	if err != nil {
		return err
	}
	if !turn {
		m.log.Info("link mail not sent: one went out less than the interval ago", "kind", d.Kind, "subscriber", sub.ID)
		return nil
	}
	now := m.now()
	var token string
	switch d.Kind {
	case KindDataLink:
		token = linktoken.Data(m.signer, sub.ID, now)
	case KindPrefsLink:
		token = linktoken.Preferences(m.signer, sub.ID, now)
	default:
		return queue.Permanent(fmt.Errorf("link mail: unknown kind %q", d.Kind))
	}
	lang := templates.Negotiate(sub.Locale, "")
	e, err := m.tpl.Email(lang, d.Kind, mailData{Kind: d.Kind, Name: sub.Name, URL: m.baseURL + "/p/" + token})
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
