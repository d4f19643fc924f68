package optin

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/mail"
	"net/url"
	"strings"
	"time"

	gojson "github.com/goccy/go-json"

	"consentmail/mailer"
	"consentmail/preferences"
	"consentmail/preferences/linktoken"
	"consentmail/queue"
	"consentmail/templates"
)

// KindOptin is the queue message kind of a confirmation mail.
const KindOptin = "optin"

// ForSubscriber reports whether m is a confirmation mail for subscriber.
func ForSubscriber(m queue.Message, subscriber string) bool {
	if m.Kind != KindOptin {
		return false
	}
	var req preferences.OptinRequest
	return json.Unmarshal(m.Body, &req) == nil && req.Subscriber == subscriber
}

// Sender sends one message; mailer.Sender satisfies it.
type Sender interface {
	Send(ctx context.Context, m *mailer.Message) error
}

// Mailer sends confirmation mails from the queue.
type Mailer struct {
	store  *preferences.Store
	signer *linktoken.Signer
	sender Sender
	from   string
	cfg    Config
	now    func() time.Time
	log    *slog.Logger
	mails  *confirmations
}

// NewMailer returns the queue handler for KindOptin messages. from is the sender of
// system mail (CONSENTMAIL_FROM).
func NewMailer(store *preferences.Store, pages *templates.Renderer, signer *linktoken.Signer, sender Sender,
	from string, cfg Config, now func() time.Time, log *slog.Logger) *Mailer {
	return &Mailer{store: store, signer: signer, sender: sender, from: from, cfg: cfg, now: now, log: log,
		mails: newConfirmations(pages)}
}

// optinMail is the data of the confirmation email templates.
type optinMail struct {
	Name       string
	Lists      []preferences.List
	ConfirmURL string
	Expires    time.Time
}

// ConfirmToken returns the signed confirmation token of an opt-in round.
func ConfirmToken(s *linktoken.Signer, req preferences.OptinRequest, expires time.Time) string {
	return s.Sign(purposeConfirm, expires, req.Subscriber, req.Nonce, strings.Join(req.Lists, ","))
}

// Handle sends the confirmation mail of one queued opt-in round, or drops it when
// nothing is pending any more (confirmed meanwhile, unsubscribed, erased, replaced).
// SMTP failures come back classified: temporary ones are retried by the queue.
func (m *Mailer) Handle(ctx context.Context, d queue.Delivery) error {
	var req preferences.OptinRequest
	if err := gojson.Unmarshal(d.Body, &req); err != nil {
		return queue.Permanent(fmt.Errorf("decode optin message %s: %w", d.ID, err))
	}
	p, err := m.store.PendingOptin(ctx, req)
	if err != nil {
		return err
	}
	if len(p.Lists) == 0 {
		return nil
	}
	req.Lists = req.Lists[:0]
	for _, l := range p.Lists {
		req.Lists = append(req.Lists, l.ID)
	}
	expires := m.now().Add(m.cfg.OptinTTL).Truncate(time.Second)
	lang := templates.Negotiate(p.Subscriber.Locale, "")
	email, err := m.mails.render(lang, p.Subscriber.Name, localized(p.Lists, lang), strings.TrimRight(m.cfg.BaseURL, "/")+"/confirm/",
		url.PathEscape(ConfirmToken(m.signer, req, expires)), expires)
	if err != nil {
		return queue.Permanent(err)
	}
	from := m.from
	if p.Lists[0].From != "" {
		from = p.Lists[0].From
	}
	msgID := messageID(from)
	err = m.sender.Send(ctx, &mailer.Message{From: from, To: p.Subscriber.Email, Subject: email.Subject,
		HTML: email.HTML, Text: email.Text, MessageID: msgID, Date: m.now(),
		Headers: map[string]string{"Auto-Submitted": "auto-generated"}})
	if err != nil {
		if mailer.IsTemporary(err) {
			return err
		}
		return queue.Permanent(err)
	}
	// The event goes into the next group commit, before the queue's acknowledgement
	// of this mail: no sync of its own per mail. The mail went out; failing here would
	// send it again, so a failure is logged only.
	done, err := m.store.QueueConfirmationSent(ctx, req, msgID)
	if err != nil {
		m.log.Error("recording confirmation_sent failed", "subscriber", req.Subscriber, "err", err)
		return nil
	}
	go func() {
		if err := <-done; err != nil {
			m.log.Error("recording confirmation_sent failed", "subscriber", req.Subscriber, "err", err)
		}
	}()
	return nil
}

// messageID returns a unique Message-ID in the domain of from.
func messageID(from string) string {
	domain := "localhost"
	if a, err := mail.ParseAddress(from); err == nil {
		if at := strings.LastIndexByte(a.Address, '@'); at >= 0 {
			domain = a.Address[at+1:]
		}
	}
	b := make([]byte, 16)
	rand.Read(b)
	return "<" + hex.EncodeToString(b) + "@" + domain + ">"
}
