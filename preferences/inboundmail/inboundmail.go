// Package inboundmail connects the inbound SMTP server (mailer/inbound) and the relay
// webhooks (mailer/webhooks, through the same Bounce, Complaint and Quarantine) to the
// consent book: it turns the tokens of bounce+TOKEN@, unsubscribe+TOKEN@ and the reports'
// signed header into subscribers and campaigns, records bounces, complaints and
// mailto unsubscribes through the store's domain methods, keeps what matches nothing
// in the sealed quarantine, and serves that quarantine to admins and DPOs at
// GET /api/v1/inbound/quarantine.
package inboundmail

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/gofiber/fiber/v2"
	"github.com/prometheus/client_golang/prometheus"

	"consentmail/mailer/inbound"
	"consentmail/preferences"
	"consentmail/preferences/apiauth"
	"consentmail/preferences/linktoken"
)

// Campaigns is what the campaigns engine tells and is told: the lists of a campaign
// (a mailto unsubscribe withdraws from those) and its bounce, complaint and
// unsubscribe counters.
type Campaigns interface {
	Lists(ctx context.Context, id string) ([]string, error)
	Bounced(ctx context.Context, id, subscriber string)
	Complained(ctx context.Context, id, subscriber string)
	Unsubscribed(ctx context.Context, id string)
}

// Handler is the inbound.Handler over the consent book, and the quarantine API.
type Handler struct {
	store     *preferences.Store
	signer    *linktoken.Signer
	campaigns Campaigns
	guard     *apiauth.Guard
	log       *slog.Logger
	messages  *prometheus.CounterVec
}

// New returns the Handler. signer verifies bounce and mailto-unsubscribe tokens (the
// campaign worker signs them with the same key).
func New(store *preferences.Store, signer *linktoken.Signer, campaigns Campaigns, guard *apiauth.Guard,
	log *slog.Logger, reg prometheus.Registerer) *Handler {
	h := &Handler{store: store, signer: signer, campaigns: campaigns, guard: guard, log: log,
		messages: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "consentmail_inbound_messages_total",
			Help: "Inbound messages handled, by result: bounce, soft_bounce, complaint, mailto_unsubscribe, quarantined."},
			[]string{"result"})}
	if reg != nil {
		reg.MustRegister(h.messages)
	}
	return h
}

var _ inbound.Handler = (*Handler)(nil)

// Check verifies the token of an address at RCPT TO.
func (h *Handler) Check(kind inbound.Kind, token string) error {
	var err error
	switch kind {
	case inbound.KindBounce:
		_, err = linktoken.VerifyBounce(h.signer, token)
	case inbound.KindUnsubscribe:
		_, err = linktoken.VerifyMailUnsubscribe(h.signer, token)
	default:
		err = fmt.Errorf("no token for %s", kind)
	}
	return err
}

func (h *Handler) ref(token string) (linktoken.MailRef, error) {
	ref, err := linktoken.VerifyBounce(h.signer, token)
	if err != nil {
		return ref, fmt.Errorf("bounce token: %w", inbound.ErrUnmatched)
	}
	return ref, nil
}

// Bounce records a delivery failure for the message of token.
func (h *Handler) Bounce(ctx context.Context, token string, b inbound.Bounce) error {
	ref, err := h.ref(token)
	if err != nil {
		return err
	}
	source := "dsn"
	if b.Source != "" {
		source = "webhook:" + b.Source
	}
	res, err := h.store.RecordBounce(ctx, preferences.BounceInput{Subscriber: ref.Subscriber, Campaign: ref.Campaign,
		Permanent: b.Permanent, Status: b.Status, Action: b.Action, Source: source,
		Personal: personal("recipient", b.FinalRecipient, "original_recipient", b.OriginalRecipient,
			"diagnostic", b.DiagnosticCode, "reporting_mta", b.ReportingMTA, "remote_mta", b.RemoteMTA)})
	if errors.Is(err, preferences.ErrNotFound) {
		return nil // erased since: nothing of them may be kept
	}
	if err != nil {
		return err
	}
	if b.Permanent {
		h.messages.WithLabelValues("bounce").Inc()
	} else {
		h.messages.WithLabelValues("soft_bounce").Inc()
	}
	// The campaign counts the people its bounces blocked, not the reports.
	if res.Blocked && ref.Campaign != "" {
		h.campaigns.Bounced(ctx, ref.Campaign, ref.Subscriber)
	}
	return nil
}

// Complaint withdraws every consent of the person who reported the message of token.
func (h *Handler) Complaint(ctx context.Context, token string, f inbound.Feedback) error {
	ref, err := h.ref(token)
	if err != nil {
		return err
	}
	changed, err := h.store.RecordComplaint(ctx, preferences.ComplaintInput{Subscriber: ref.Subscriber, Campaign: ref.Campaign,
		FeedbackType: f.FeedbackType, UserAgent: f.UserAgent,
		Personal: personal("original_rcpt_to", f.OriginalRcptTo, "source_ip", f.SourceIP, "arrival_date", f.ArrivalDate)})
	if errors.Is(err, preferences.ErrNotFound) {
		return nil
	}
	if err != nil {
		return err
	}
	h.messages.WithLabelValues("complaint").Inc()
	// The campaign counts the people who left by complaining, not repeated reports.
	if len(changed) > 0 && ref.Campaign != "" {
		h.campaigns.Complained(ctx, ref.Campaign, ref.Subscriber)
	}
	return nil
}

// Unsubscribe withdraws consent to the lists of the message's campaign (every list for
// mail outside a campaign, or when the campaign is gone), method mailto.
func (h *Handler) Unsubscribe(ctx context.Context, token string) error {
	ref, err := linktoken.VerifyMailUnsubscribe(h.signer, token)
	if err != nil {
		return fmt.Errorf("unsubscribe token: %w", inbound.ErrUnmatched)
	}
	var lists []string
	details := map[string]string{}
	if ref.Campaign != "" {
		details["campaign"] = ref.Campaign
		if l, err := h.campaigns.Lists(ctx, ref.Campaign); err == nil && len(l) > 0 {
			lists = l
		}
	}
	changed, err := h.store.Unsubscribe(ctx, preferences.UnsubscribeInput{Subscriber: ref.Subscriber, Lists: lists,
		Method: "mailto", Actor: "subscriber", Details: details})
	if errors.Is(err, preferences.ErrNotFound) {
		return nil
	}
	if err != nil {
		return err
	}
	h.messages.WithLabelValues("mailto_unsubscribe").Inc()
	if len(changed) > 0 && ref.Campaign != "" {
		h.campaigns.Unsubscribed(ctx, ref.Campaign)
	}
	return nil
}

// Quarantine keeps m sealed for preferences.QuarantineTTL.
func (h *Handler) Quarantine(ctx context.Context, m inbound.Unmatched) error {
	_, err := h.store.Quarantine(ctx, preferences.QuarantineInput{Received: m.Received, RemoteAddr: m.RemoteAddr,
		From: m.From, To: m.To, Reason: m.Reason, Raw: m.Raw})
	if err == nil {
		h.messages.WithLabelValues("quarantined").Inc()
	}
	return err
}

// Run deletes expired quarantined messages at start and every hour until ctx ends.
func (h *Handler) Run(ctx context.Context) error {
	t := time.NewTicker(time.Hour)
	defer t.Stop()
	for {
		if n, err := h.store.ExpireQuarantine(ctx); err != nil && ctx.Err() == nil {
			h.log.Error("expiring quarantined inbound mail", "err", err)
		} else if n > 0 {
			h.log.Info("expired quarantined inbound mail", "messages", n)
		}
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}

// Routes mounts GET /api/v1/inbound/quarantine (admin, dpo).
func (h *Handler) Routes(r fiber.Router) {
	r.Get("/api/v1/inbound/quarantine", h.guard.Require(preferences.RoleDPO), h.quarantine)
}

func (h *Handler) quarantine(c *fiber.Ctx) error {
	msgs, err := h.store.QuarantinedMessages(c.UserContext())
	if err != nil {
		return err
	}
	return c.JSON(fiber.Map{"count": len(msgs), "retention": preferences.QuarantineTTL.String(), "messages": msgs})
}

// personal builds the sealed details from key, value pairs, leaving out empty values.
func personal(kv ...string) map[string]string {
	out := map[string]string{}
	for i := 0; i+1 < len(kv); i += 2 {
		if kv[i+1] != "" {
			out[kv[i]] = kv[i+1]
		}
	}
	return out
}
