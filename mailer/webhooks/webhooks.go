package webhooks

import (
	"context"
	"crypto/ecdsa"
	"crypto/x509"
	"encoding/base64"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"regexp"
	"strings"
	"sync"
	"time"

	"github.com/gofiber/fiber/v2"
	"github.com/prometheus/client_golang/prometheus"

	"consentmail/mailer/inbound"
	"consentmail/preferences/httperr"
)

// MaxSkew is how far a signed timestamp may be from now.
const MaxSkew = 5 * time.Minute

// RefKey is the name of the custom argument (SendGrid), user variable (Mailgun) or
// metadata key (Postmark) that carries a message's X-Consentmail-Ref token.
const RefKey = "consentmail_ref"

// Sink records what the events report; inboundmail.Handler is one. Bounce and
// Complaint return an error wrapping inbound.ErrUnmatched for a token naming no
// message of ours.
type Sink interface {
	Bounce(ctx context.Context, token string, b inbound.Bounce) error
	Complaint(ctx context.Context, token string, f inbound.Feedback) error
	Quarantine(ctx context.Context, m inbound.Unmatched) error
}

// Config says which relays' webhooks are on: each route is mounted only when its
// secret or key is set.
type Config struct {
	// SESTopics are the SNS topic ARNs whose notifications POST /webhooks/ses accepts.
	// SNS signs the messages of every topic of every AWS account: the topic is what
	// makes a message ours.
	SESTopics []string
	// PostmarkAuth is "user:password", the basic-auth credentials in the URL of the
	// Postmark webhook (https://user:password@host/webhooks/postmark).
	PostmarkAuth string
	// SendGridKey is the verification key of SendGrid's signed event webhook.
	SendGridKey *ecdsa.PublicKey
	// MailgunKey is Mailgun's HTTP webhook signing key.
	MailgunKey []byte
}

// ParseSendGridKey reads the verification key SendGrid shows for a signed event
// webhook: base64 of a DER (PKIX) ECDSA P-256 public key.
func ParseSendGridKey(s string) (*ecdsa.PublicKey, error) {
	der, err := base64.StdEncoding.DecodeString(strings.TrimSpace(s))
	if err != nil {
		return nil, fmt.Errorf("sendgrid key: not base64: %w", err)
	}
	pub, err := x509.ParsePKIXPublicKey(der)
	if err != nil {
		return nil, fmt.Errorf("sendgrid key: %w", err)
	}
	k, ok := pub.(*ecdsa.PublicKey)
	if !ok {
		return nil, fmt.Errorf("sendgrid key: a %T, want an ECDSA key", pub)
	}
	return k, nil
}

// snsHost is the host of an SNS certificate or subscription URL.
var snsHost = regexp.MustCompile(`^sns\.[a-z0-9-]+\.amazonaws\.com(\.cn)?$`)

// Handler serves the webhook routes.
type Handler struct {
	cfg     Config
	sink    Sink
	client  *http.Client
	snsHost *regexp.Regexp
	now     func() time.Time
	log     *slog.Logger
	events  *prometheus.CounterVec
	seen    *seen

	certMu sync.Mutex
	certs  map[string]*certEntry
}

// New returns the Handler. client fetches SNS signing certificates and confirms SNS
// subscriptions (nil: a client with a 10-second timeout). snsHostPattern replaces the
// pattern of the hosts those URLs may name (sns.REGION.amazonaws.com): tests only,
// nil in production.
func New(cfg Config, sink Sink, client *http.Client, snsHostPattern *regexp.Regexp, now func() time.Time,
	log *slog.Logger, reg prometheus.Registerer) *Handler {
	if client == nil {
		client = &http.Client{Timeout: 10 * time.Second}
	}
	if snsHostPattern == nil {
		snsHostPattern = snsHost
	}
	h := &Handler{cfg: cfg, sink: sink, client: client, snsHost: snsHostPattern, now: now, log: log,
		seen: &seen{m: map[string]time.Time{}}, certs: map[string]*certEntry{},
		events: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "consentmail_webhook_events_total",
			Help: "Relay webhook events, by relay and result: bounce, soft_bounce, complaint, quarantined, ignored, refused."},
			[]string{"relay", "result"})}
	if reg != nil {
		reg.MustRegister(h.events)
	}
	return h
}

// Routes mounts POST /webhooks/ses, /webhooks/postmark, /webhooks/sendgrid and
// /webhooks/mailgun, each only when configured. They need no API key: each checks its
// relay's signature or credentials.
func (h *Handler) Routes(r fiber.Router) {
	if len(h.cfg.SESTopics) > 0 {
		r.Post("/webhooks/ses", h.ses)
	}
	if h.cfg.PostmarkAuth != "" {
		r.Post("/webhooks/postmark", h.postmark)
	}
	if h.cfg.SendGridKey != nil {
		r.Post("/webhooks/sendgrid", h.sendgrid)
	}
	if len(h.cfg.MailgunKey) > 0 {
		r.Post("/webhooks/mailgun", h.mailgun)
	}
}

// event is one relay event, parsed.
type event struct {
	ref       string // the X-Consentmail-Ref token, or "" when the relay gave none
	recipient string
	bounce    *inbound.Bounce
	complaint *inbound.Feedback
	raw       []byte // the event as the relay sent it, for the quarantine
}

// errRefused is a request whose signature, credentials or timestamp do not check.
var errRefused = errors.New("refused")

func (h *Handler) refuse(c *fiber.Ctx, relay, why string) error {
	h.events.WithLabelValues(relay, "refused").Inc()
	h.log.Warn("webhook refused", "relay", relay, "reason", why, "ip", c.IP())
	return httperr.New(fiber.StatusForbidden, "invalid_signature", "the request's signature does not check: "+why)
}

// record hands each event to the sink and answers 200 once all are recorded; a Sink
// error answers 503 so that the relay tries again.
func (h *Handler) record(c *fiber.Ctx, relay string, evs []event) error {
	ctx := c.UserContext()
	for _, ev := range evs {
		if ev.bounce == nil && ev.complaint == nil {
			h.events.WithLabelValues(relay, "ignored").Inc()
			continue
		}
		result, err := h.recordOne(ctx, ev)
		if errors.Is(err, inbound.ErrUnmatched) {
			var to []string
			if ev.recipient != "" {
				to = []string{ev.recipient}
			}
			result = "quarantined"
			err = h.sink.Quarantine(ctx, inbound.Unmatched{Received: h.now().UTC(), RemoteAddr: c.IP(),
				From: relay + " webhook", To: to, Reason: fmt.Sprintf("%s webhook: %v", relay, err), Raw: ev.raw})
		}
		if err != nil {
			h.log.Error("webhook event not recorded", "relay", relay, "err", err)
			return httperr.New(fiber.StatusServiceUnavailable, "not_recorded", "the event could not be recorded; deliver it again later")
		}
		h.events.WithLabelValues(relay, result).Inc()
	}
	return c.JSON(fiber.Map{"status": "recorded", "events": len(evs)})
}

func (h *Handler) recordOne(ctx context.Context, ev event) (string, error) {
	if ev.ref == "" {
		return "", fmt.Errorf("no %s or bounce+ return path: %w", inbound.FeedbackHeader, inbound.ErrUnmatched)
	}
	if ev.complaint != nil {
		return "complaint", h.sink.Complaint(ctx, ev.ref, *ev.complaint)
	}
	result := "soft_bounce"
	if ev.bounce.Permanent {
		result = "bounce"
	}
	return result, h.sink.Bounce(ctx, ev.ref, *ev.bounce)
}

// checkTime refuses a signed timestamp (Unix seconds) more than MaxSkew from now.
func (h *Handler) checkTime(unix int64) error {
	d := h.now().Sub(time.Unix(unix, 0))
	if d > MaxSkew || d < -MaxSkew {
		return fmt.Errorf("timestamp %s is more than %s from now: %w", time.Unix(unix, 0).UTC().Format(time.RFC3339), MaxSkew, errRefused)
	}
	return nil
}

// seen remembers what was accepted (signatures, tokens, message ids) for twice
// MaxSkew: a signed request is accepted once. A request that fails after its claim
// releases it, so the relay's retry is not taken for a replay.
type seen struct {
	mu    sync.Mutex
	m     map[string]time.Time
	prune time.Time
}

// claim returns false when key was claimed within 2·MaxSkew of now.
func (s *seen) claim(key string, now time.Time) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if now.Sub(s.prune) > time.Minute {
		for k, t := range s.m {
			if now.Sub(t) > 2*MaxSkew {
				delete(s.m, k)
			}
		}
		s.prune = now
	}
	if t, ok := s.m[key]; ok && now.Sub(t) <= 2*MaxSkew {
		return false
	}
	s.m[key] = now
	return true
}

func (s *seen) release(key string) {
	s.mu.Lock()
	delete(s.m, key)
	s.mu.Unlock()
}

// once runs handle for a request identified by key unless it was accepted before; a
// failed handling releases key.
func (h *Handler) once(c *fiber.Ctx, relay, key string, handle func() error) error {
	if !h.seen.claim(relay+"\x00"+key, h.now()) {
		return h.refuse(c, relay, "already received (replay)")
	}
	err := handle()
	if err != nil || c.Response().StatusCode() >= 300 {
		h.seen.release(relay + "\x00" + key)
	}
	return err
}

// refInHeaders returns the X-Consentmail-Ref value among name, value pairs.
func refInHeaders(get func(name string) string) string {
	return strings.TrimSpace(get(inbound.FeedbackHeader))
}

// refInText finds an "X-Consentmail-Ref: TOKEN" line, or a bounce+TOKEN@ address, in
// a quoted message (Postmark's bounce Content).
func refInText(s string) string {
	lower := strings.ToLower(s)
	if i := strings.Index(lower, strings.ToLower(inbound.FeedbackHeader)+":"); i >= 0 {
		if f := strings.Fields(s[i+len(inbound.FeedbackHeader)+1:]); len(f) > 0 {
			return f[0]
		}
	}
	if i := strings.Index(lower, "bounce+"); i >= 0 {
		end := strings.IndexAny(s[i:], "@> \r\n\t")
		if end > 0 && s[i+end] == '@' {
			return inbound.BounceToken(s[i : i+end+1])
		}
	}
	return ""
}

// lookup is a case-insensitive map lookup (relays differ in header case).
func lookup(m map[string]string, keys ...string) string {
	for _, want := range keys {
		for k, v := range m {
			if strings.EqualFold(k, want) && strings.TrimSpace(v) != "" {
				return strings.TrimSpace(v)
			}
		}
	}
	return ""
}
