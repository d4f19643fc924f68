package webhooks

import (
	"context"
	"crypto"
	"crypto/rsa"
	"crypto/sha1"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/gofiber/fiber/v2"

	"consentmail/mailer/inbound"
	"consentmail/preferences/httperr"
)

// snsMessage is an SNS HTTP(S) delivery.
type snsMessage struct {
	Type             string
	MessageId        string
	Token            string
	TopicArn         string
	Subject          string
	Message          string
	Timestamp        string
	SignatureVersion string
	Signature        string
	SigningCertURL   string `json:"SigningCertURL"`
	SubscribeURL     string `json:"SubscribeURL"`
}

// canonical is the string SNS signs: the named fields in this order, each as
// "Name\nvalue\n" (Subject only when present).
func (m *snsMessage) canonical() (string, error) {
	var b strings.Builder
	add := func(k, v string) { b.WriteString(k + "\n" + v + "\n") }
	add("Message", m.Message)
	add("MessageId", m.MessageId)
	switch m.Type {
	case "Notification":
		if m.Subject != "" {
			add("Subject", m.Subject)
		}
	case "SubscriptionConfirmation", "UnsubscribeConfirmation":
		add("SubscribeURL", m.SubscribeURL)
	default:
		return "", fmt.Errorf("SNS message type %q", m.Type)
	}
	add("Timestamp", m.Timestamp)
	if m.Type != "Notification" {
		add("Token", m.Token)
	}
	add("TopicArn", m.TopicArn)
	add("Type", m.Type)
	return b.String(), nil
}

// snsURL checks that u is https on an SNS host.
func (h *Handler) snsURL(raw string) (*url.URL, error) {
	u, err := url.Parse(raw)
	if err != nil || u.Scheme != "https" || u.User != nil || !h.snsHost.MatchString(strings.ToLower(u.Hostname())) {
		return nil, fmt.Errorf("%q is no https URL of an SNS host: %w", raw, errRefused)
	}
	return u, nil
}

type certEntry struct {
	key     *rsa.PublicKey
	expires time.Time
}

// signingKey returns the public key of the SNS certificate at raw, fetched once.
func (h *Handler) signingKey(ctx context.Context, raw string) (*rsa.PublicKey, error) {
	u, err := h.snsURL(raw)
	if err != nil {
		return nil, err
	}
	if !strings.HasSuffix(u.Path, ".pem") {
		return nil, fmt.Errorf("%q is no certificate: %w", raw, errRefused)
	}
	h.certMu.Lock()
	e, ok := h.certs[u.String()]
	h.certMu.Unlock()
	if ok && h.now().Before(e.expires) {
		return e.key, nil
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u.String(), nil)
	if err != nil {
		return nil, err
	}
	res, err := h.client.Do(req)
	if err != nil {
		return nil, fmt.Errorf("fetch SNS certificate: %w", err)
	}
	defer res.Body.Close()
	body, err := io.ReadAll(io.LimitReader(res.Body, 64<<10))
	if err != nil || res.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("fetch SNS certificate: status %d: %v", res.StatusCode, err)
	}
	block, _ := pem.Decode(body)
	if block == nil || block.Type != "CERTIFICATE" {
		return nil, fmt.Errorf("SNS certificate: no PEM certificate: %w", errRefused)
	}
	cert, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		return nil, fmt.Errorf("SNS certificate: %v: %w", err, errRefused)
	}
	key, ok := cert.PublicKey.(*rsa.PublicKey)
	if !ok || h.now().After(cert.NotAfter) || h.now().Before(cert.NotBefore) {
		return nil, fmt.Errorf("SNS certificate: no valid RSA certificate: %w", errRefused)
	}
	h.certMu.Lock()
	if len(h.certs) > 32 { // SNS rotates its certificate rarely; forget old ones
		clear(h.certs)
	}
	expires := h.now().Add(24 * time.Hour)
	if cert.NotAfter.Before(expires) {
		expires = cert.NotAfter
	}
	h.certs[u.String()] = &certEntry{key: key, expires: expires}
	h.certMu.Unlock()
	return key, nil
}

// verify checks m's signature with its certificate.
func (h *Handler) verifySNS(ctx context.Context, m *snsMessage) error {
	canon, err := m.canonical()
	if err != nil {
		return fmt.Errorf("%v: %w", err, errRefused)
	}
	sig, err := base64.StdEncoding.DecodeString(m.Signature)
	if err != nil {
		return fmt.Errorf("signature not base64: %w", errRefused)
	}
	var hash crypto.Hash
	var digest []byte
	switch m.SignatureVersion {
	case "1":
		d := sha1.Sum([]byte(canon))
		hash, digest = crypto.SHA1, d[:]
	case "2":
		d := sha256.Sum256([]byte(canon))
		hash, digest = crypto.SHA256, d[:]
	default:
		return fmt.Errorf("SignatureVersion %q: %w", m.SignatureVersion, errRefused)
	}
	key, err := h.signingKey(ctx, m.SigningCertURL)
	if err != nil {
		return err
	}
	if err := rsa.VerifyPKCS1v15(key, hash, digest, sig); err != nil {
		return fmt.Errorf("bad signature: %w", errRefused)
	}
	return nil
}

func (h *Handler) ses(c *fiber.Ctx) error {
	var m snsMessage
	if err := json.Unmarshal(c.Body(), &m); err != nil {
		return httperr.New(fiber.StatusBadRequest, "invalid_json", "the body is no SNS message")
	}
	if err := h.verifySNS(c.UserContext(), &m); err != nil {
		if errors.Is(err, errRefused) {
			return h.refuse(c, "ses", err.Error())
		}
		// The certificate could not be fetched: SNS delivers again later.
		h.log.Error("SNS certificate", "err", err)
		return httperr.New(fiber.StatusServiceUnavailable, "certificate_unavailable", "the SNS signing certificate could not be fetched")
	}
	if !slices.Contains(h.cfg.SESTopics, m.TopicArn) {
		return h.refuse(c, "ses", "topic "+m.TopicArn+" is not configured")
	}
	return h.once(c, "ses", m.MessageId, func() error {
		switch m.Type {
		case "SubscriptionConfirmation":
			return h.confirmSubscription(c, &m)
		case "Notification":
			ev, err := parseSES(m.Message)
			if err != nil {
				return httperr.New(fiber.StatusBadRequest, "invalid_json", "the notification is no SES event")
			}
			return h.record(c, "ses", ev)
		}
		return c.JSON(fiber.Map{"status": "ignored"})
	})
}

// confirmSubscription visits SubscribeURL, on an SNS host only.
func (h *Handler) confirmSubscription(c *fiber.Ctx, m *snsMessage) error {
	u, err := h.snsURL(m.SubscribeURL)
	if err != nil {
		return h.refuse(c, "ses", err.Error())
	}
	req, err := http.NewRequestWithContext(c.UserContext(), http.MethodGet, u.String(), nil)
	if err != nil {
		return err
	}
	res, err := h.client.Do(req)
	if err == nil {
		res.Body.Close()
		if res.StatusCode != http.StatusOK {
			err = fmt.Errorf("status %d", res.StatusCode)
		}
	}
	if err != nil {
		h.log.Error("confirming the SNS subscription", "topic", m.TopicArn, "err", err)
		return httperr.New(fiber.StatusBadGateway, "not_confirmed", "the SNS subscription could not be confirmed")
	}
	h.log.Info("SNS subscription confirmed", "topic", m.TopicArn)
	return c.JSON(fiber.Map{"status": "confirmed"})
}

// sesEvent is an SES notification (notificationType) or event publishing record
// (eventType).
type sesEvent struct {
	NotificationType string `json:"notificationType"`
	EventType        string `json:"eventType"`
	Bounce           *struct {
		BounceType        string `json:"bounceType"` // Permanent, Transient, Undetermined
		BounceSubType     string `json:"bounceSubType"`
		ReportingMTA      string `json:"reportingMTA"`
		BouncedRecipients []struct {
			EmailAddress   string `json:"emailAddress"`
			Action         string `json:"action"`
			Status         string `json:"status"`
			DiagnosticCode string `json:"diagnosticCode"`
		} `json:"bouncedRecipients"`
	} `json:"bounce"`
	Complaint *struct {
		ComplaintFeedbackType string `json:"complaintFeedbackType"`
		UserAgent             string `json:"userAgent"`
		ArrivalDate           string `json:"arrivalDate"`
		ComplainedRecipients  []struct {
			EmailAddress string `json:"emailAddress"`
		} `json:"complainedRecipients"`
	} `json:"complaint"`
	Mail struct {
		Source  string `json:"source"`
		Headers []struct {
			Name  string `json:"name"`
			Value string `json:"value"`
		} `json:"headers"`
	} `json:"mail"`
}

func parseSES(msg string) ([]event, error) {
	var n sesEvent
	if err := json.Unmarshal([]byte(msg), &n); err != nil {
		return nil, err
	}
	ev := event{raw: []byte(msg), ref: refInHeaders(func(name string) string {
		for _, hd := range n.Mail.Headers {
			if strings.EqualFold(hd.Name, name) {
				return hd.Value
			}
		}
		return ""
	})}
	if ev.ref == "" {
		ev.ref = inbound.BounceToken(n.Mail.Source)
	}
	kind := n.NotificationType
	if kind == "" {
		kind = n.EventType
	}
	switch {
	case kind == "Bounce" && n.Bounce != nil:
		b := &inbound.Bounce{Source: "ses", Permanent: n.Bounce.BounceType == "Permanent", ReportingMTA: n.Bounce.ReportingMTA}
		b.Action = "delayed"
		if b.Permanent {
			b.Action = "failed"
		}
		if r := n.Bounce.BouncedRecipients; len(r) > 0 {
			b.FinalRecipient, b.Status, b.DiagnosticCode = r[0].EmailAddress, r[0].Status, r[0].DiagnosticCode
			if r[0].Action != "" {
				b.Action = r[0].Action
			}
		}
		ev.bounce, ev.recipient = b, b.FinalRecipient
	case kind == "Complaint" && n.Complaint != nil:
		f := &inbound.Feedback{FeedbackType: n.Complaint.ComplaintFeedbackType, UserAgent: n.Complaint.UserAgent,
			ArrivalDate: n.Complaint.ArrivalDate, Ref: ev.ref}
		if f.FeedbackType == "" {
			f.FeedbackType = "abuse"
		}
		if f.UserAgent == "" {
			f.UserAgent = "Amazon SES"
		}
		if r := n.Complaint.ComplainedRecipients; len(r) > 0 {
			f.OriginalRcptTo = r[0].EmailAddress
		}
		ev.complaint, ev.recipient = f, f.OriginalRcptTo
	}
	return []event{ev}, nil
}
