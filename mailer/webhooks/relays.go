package webhooks

import (
	"crypto/ecdsa"
	"crypto/hmac"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"

	"github.com/gofiber/fiber/v2"

	"consentmail/mailer/inbound"
	"consentmail/preferences/httperr"
)

// Postmark signs nothing: its webhook URL carries basic-auth credentials.
func (h *Handler) postmark(c *fiber.Ctx) error {
	auth, ok := strings.CutPrefix(c.Get(fiber.HeaderAuthorization), "Basic ")
	got, err := base64.StdEncoding.DecodeString(strings.TrimSpace(auth))
	want := sha256.Sum256([]byte(h.cfg.PostmarkAuth))
	have := sha256.Sum256(got)
	if !ok || err != nil || subtle.ConstantTimeCompare(want[:], have[:]) != 1 {
		h.events.WithLabelValues("postmark", "refused").Inc()
		c.Set(fiber.HeaderWWWAuthenticate, `Basic realm="consentmail webhooks"`)
		return httperr.New(fiber.StatusUnauthorized, "unauthorized", "the webhook's credentials are wrong")
	}
	var p postmarkEvent
	if err := json.Unmarshal(c.Body(), &p); err != nil {
		return httperr.New(fiber.StatusBadRequest, "invalid_json", "the body is no Postmark event")
	}
	return h.record(c, "postmark", []event{p.event(c.Body())})
}

type postmarkEvent struct {
	RecordType  string
	Type        string
	Email       string
	Description string
	Details     string
	Content     string
	Metadata    map[string]string
	Headers     []struct{ Name, Value string }
	From        string
	UserAgent   string
}

func (p postmarkEvent) event(raw []byte) event {
	ev := event{raw: raw, recipient: p.Email,
		ref: lookup(p.Metadata, RefKey, "consentmail-ref", inbound.FeedbackHeader)}
	if ev.ref == "" {
		ev.ref = refInHeaders(func(name string) string {
			for _, hd := range p.Headers {
				if strings.EqualFold(hd.Name, name) {
					return hd.Value
				}
			}
			return ""
		})
	}
	if ev.ref == "" {
		ev.ref = refInText(p.Content)
	}
	if p.RecordType == "SpamComplaint" || p.Type == "SpamComplaint" {
		ua := p.UserAgent
		if ua == "" {
			ua = "Postmark"
		}
		ev.complaint = &inbound.Feedback{FeedbackType: "abuse", UserAgent: ua, OriginalRcptTo: p.Email, Ref: ev.ref}
		return ev
	}
	if p.RecordType != "Bounce" {
		return ev
	}
	b := &inbound.Bounce{Source: "postmark"}
	b.FinalRecipient, b.DiagnosticCode = p.Email, strings.TrimSpace(p.Details)
	switch p.Type {
	case "HardBounce", "BadEmailAddress":
		b.Permanent, b.Action, b.Status = true, "failed", "5.0.0"
	case "SoftBounce", "Transient", "DnsError", "Blocked":
		b.Action, b.Status = "delayed", "4.0.0"
	default: // auto-responders, subscribe requests, challenge verifications…: no failure
		return ev
	}
	if b.DiagnosticCode == "" {
		b.DiagnosticCode = p.Description
	}
	ev.bounce = b
	return ev
}

// SendGrid's signed event webhook: ECDSA P-256 over SHA-256(timestamp ‖ body).
func (h *Handler) sendgrid(c *fiber.Ctx) error {
	sig, err := base64.StdEncoding.DecodeString(c.Get("X-Twilio-Email-Event-Webhook-Signature"))
	ts := c.Get("X-Twilio-Email-Event-Webhook-Timestamp")
	if err != nil || len(sig) == 0 || ts == "" {
		return h.refuse(c, "sendgrid", "no signature or timestamp header")
	}
	digest := sha256.Sum256(append([]byte(ts), c.Body()...))
	if !ecdsa.VerifyASN1(h.cfg.SendGridKey, digest[:], sig) {
		return h.refuse(c, "sendgrid", "bad signature")
	}
	unix, err := strconv.ParseInt(ts, 10, 64)
	if err != nil {
		return h.refuse(c, "sendgrid", "timestamp is no number")
	}
	if err := h.checkTime(unix); err != nil {
		return h.refuse(c, "sendgrid", err.Error())
	}
	var raws []json.RawMessage
	if err := json.Unmarshal(c.Body(), &raws); err != nil {
		return httperr.New(fiber.StatusBadRequest, "invalid_json", "the body is no array of SendGrid events")
	}
	evs := make([]event, 0, len(raws))
	for _, raw := range raws {
		var s sendgridEvent
		if err := json.Unmarshal(raw, &s); err != nil {
			return httperr.New(fiber.StatusBadRequest, "invalid_json", "an event is no SendGrid event")
		}
		evs = append(evs, s.event(raw))
	}
	return h.once(c, "sendgrid", string(sig), func() error { return h.record(c, "sendgrid", evs) })
}

type sendgridEvent struct {
	Email  string `json:"email"`
	Event  string `json:"event"`
	Type   string `json:"type"` // bounce or blocked, for a bounce
	Status string `json:"status"`
	Reason string `json:"reason"`
	Ref    string `json:"consentmail_ref"` // a custom argument (unique_args)
}

func (s sendgridEvent) event(raw []byte) event {
	ev := event{raw: raw, recipient: s.Email, ref: strings.TrimSpace(s.Ref)}
	switch s.Event {
	case "bounce", "dropped":
		// A dropped message was never tried: SendGrid suppresses the address (an
		// earlier bounce, an invalid address, a spam report) and will keep doing so.
		b := &inbound.Bounce{Source: "sendgrid", Permanent: s.Event == "dropped" || s.Type != "blocked"}
		b.FinalRecipient, b.Status, b.DiagnosticCode, b.Action = s.Email, s.Status, s.Reason, "failed"
		if !b.Permanent {
			b.Action = "delayed"
		}
		ev.bounce = b
	case "spamreport":
		ev.complaint = &inbound.Feedback{FeedbackType: "abuse", UserAgent: "SendGrid", OriginalRcptTo: s.Email, Ref: ev.ref}
	}
	return ev
}

// Mailgun signs each event: HMAC-SHA256(signing key, timestamp ‖ token), in the body.
func (h *Handler) mailgun(c *fiber.Ctx) error {
	var m struct {
		Signature struct {
			Timestamp string `json:"timestamp"`
			Token     string `json:"token"`
			Signature string `json:"signature"`
		} `json:"signature"`
		EventData json.RawMessage `json:"event-data"`
	}
	if err := json.Unmarshal(c.Body(), &m); err != nil {
		return httperr.New(fiber.StatusBadRequest, "invalid_json", "the body is no Mailgun event")
	}
	s := m.Signature
	mac := hmac.New(sha256.New, h.cfg.MailgunKey)
	mac.Write([]byte(s.Timestamp + s.Token))
	got, err := hex.DecodeString(s.Signature)
	if err != nil || s.Token == "" || !hmac.Equal(got, mac.Sum(nil)) {
		return h.refuse(c, "mailgun", "bad signature")
	}
	unix, err := strconv.ParseInt(s.Timestamp, 10, 64)
	if err != nil {
		return h.refuse(c, "mailgun", "timestamp is no number")
	}
	if err := h.checkTime(unix); err != nil {
		return h.refuse(c, "mailgun", err.Error())
	}
	var e mailgunEvent
	if err := json.Unmarshal(m.EventData, &e); err != nil {
		return httperr.New(fiber.StatusBadRequest, "invalid_json", "event-data is no Mailgun event")
	}
	return h.once(c, "mailgun", s.Token, func() error { return h.record(c, "mailgun", []event{e.event(m.EventData)}) })
}

type mailgunEvent struct {
	Event          string         `json:"event"`
	Severity       string         `json:"severity"` // permanent, temporary
	Reason         string         `json:"reason"`
	Recipient      string         `json:"recipient"`
	UserVariables  map[string]any `json:"user-variables"`
	DeliveryStatus struct {
		Code         int    `json:"code"`
		EnhancedCode string `json:"enhanced-code"`
		Message      string `json:"message"`
		Description  string `json:"description"`
		AttemptNo    int    `json:"attempt-no"`
		MxHost       string `json:"mx-host"`
	} `json:"delivery-status"`
	Message struct {
		Headers map[string]string `json:"headers"`
	} `json:"message"`
	Envelope struct {
		Sender string `json:"sender"`
	} `json:"envelope"`
}

func (e mailgunEvent) event(raw []byte) event {
	vars := map[string]string{}
	for k, v := range e.UserVariables {
		if s, ok := v.(string); ok {
			vars[k] = s
		}
	}
	ev := event{raw: raw, recipient: e.Recipient, ref: lookup(vars, RefKey)}
	if ev.ref == "" {
		ev.ref = lookup(e.Message.Headers, inbound.FeedbackHeader)
	}
	if ev.ref == "" {
		ev.ref = inbound.BounceToken(e.Envelope.Sender)
	}
	switch e.Event {
	case "failed":
		d := e.DeliveryStatus
		// Mailgun retries a temporary failure for hours and reports each attempt: one
		// message counts once, at its first.
		if e.Severity != "permanent" && d.AttemptNo > 1 {
			return ev
		}
		b := &inbound.Bounce{Source: "mailgun", Permanent: e.Severity == "permanent"}
		b.FinalRecipient, b.RemoteMTA, b.Status = e.Recipient, d.MxHost, d.EnhancedCode
		b.DiagnosticCode = strings.TrimSpace(fmt.Sprintf("%d %s %s", d.Code, d.Message, d.Description))
		b.Action = "failed"
		if !b.Permanent {
			b.Action = "delayed"
		}
		if b.Status == "" {
			b.Status = map[bool]string{true: "5.0.0", false: "4.0.0"}[b.Permanent]
		}
		ev.bounce = b
	case "complained":
		ev.complaint = &inbound.Feedback{FeedbackType: "abuse", UserAgent: "Mailgun", OriginalRcptTo: e.Recipient, Ref: ev.ref}
	}
	return ev
}
