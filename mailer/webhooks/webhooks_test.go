package webhooks_test

import (
	"bytes"
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gofiber/fiber/v2"

	"consentmail/mailer/inbound"
	"consentmail/mailer/webhooks"
	"consentmail/mailer/webhooks/webhookstest"
	"consentmail/preferences/httperr"
)

const (
	topic = "arn:aws:sns:eu-west-1:123456789012:ses-feedback"
	ref   = "goodtoken"
)

// sink records what it is given; tokens other than ref are unmatched.
type sink struct {
	mu         sync.Mutex
	got        []string
	bounces    []inbound.Bounce
	complaints []inbound.Feedback
	quarantine []inbound.Unmatched
	fail       error
}

func (s *sink) Bounce(_ context.Context, token string, b inbound.Bounce) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.fail != nil {
		return s.fail
	}
	if token != ref {
		return fmt.Errorf("token %q: %w", token, inbound.ErrUnmatched)
	}
	kind := "soft"
	if b.Permanent {
		kind = "hard"
	}
	s.got = append(s.got, b.Source+" "+kind+" "+b.FinalRecipient)
	s.bounces = append(s.bounces, b)
	return nil
}

func (s *sink) Complaint(_ context.Context, token string, f inbound.Feedback) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.fail != nil {
		return s.fail
	}
	if token != ref {
		return fmt.Errorf("token %q: %w", token, inbound.ErrUnmatched)
	}
	s.got = append(s.got, "complaint "+f.OriginalRcptTo)
	s.complaints = append(s.complaints, f)
	return nil
}

func (s *sink) Quarantine(_ context.Context, m inbound.Unmatched) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.got = append(s.got, "quarantine "+m.From)
	s.quarantine = append(s.quarantine, m)
	return nil
}

func (s *sink) take() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := strings.Join(s.got, "; ")
	s.got = nil
	return out
}

type fixture struct {
	app  *fiber.App
	sink *sink
	sns  *webhookstest.SNS
	sg   *webhookstest.SendGrid
	mg   []byte
	now  time.Time
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	f := &fixture{sink: &sink{}, sns: webhookstest.NewSNS(t), sg: webhookstest.NewSendGrid(t),
		mg: []byte("key-0123456789abcdef0123456789abcdef"), now: time.Now()}
	sgKey, err := webhooks.ParseSendGridKey(f.sg.PublicKey(t))
	if err != nil {
		t.Fatal(err)
	}
	h := webhooks.New(webhooks.Config{SESTopics: []string{topic}, PostmarkAuth: "postmark:correct-horse-battery",
		SendGridKey: sgKey, MailgunKey: f.mg}, f.sink, f.sns.Server.Client(), webhookstest.HostPattern,
		func() time.Time { return f.now }, slog.New(slog.DiscardHandler), nil)
	f.app = fiber.New(fiber.Config{Immutable: true, ErrorHandler: httperr.Handler(slog.New(slog.DiscardHandler))})
	h.Routes(f.app)
	return f
}

// expect posts body to path and checks the status and what the sink recorded.
func (f *fixture) expect(t *testing.T, path string, body []byte, header map[string]string, status int, want string) {
	t.Helper()
	st, resp := f.post(t, path, body, header)
	if st != status {
		t.Errorf("status %d %s, want %d", st, resp, status)
	}
	if got := f.sink.take(); got != want {
		t.Errorf("recorded %q, want %q", got, want)
	}
}

func (f *fixture) post(t *testing.T, path string, body []byte, header map[string]string) (int, string) {
	t.Helper()
	req := httptest.NewRequest("POST", path, bytes.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	for k, v := range header {
		req.Header.Set(k, v)
	}
	res, err := f.app.Test(req, 10000)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(res.Body)
	return res.StatusCode, string(b)
}

func sesBounce(kind, source string, headers ...string) map[string]any {
	var hs []map[string]string
	for i := 0; i+1 < len(headers); i += 2 {
		hs = append(hs, map[string]string{"name": headers[i], "value": headers[i+1]})
	}
	return map[string]any{"notificationType": "Bounce",
		"bounce": map[string]any{"bounceType": kind, "bounceSubType": "General", "reportingMTA": "dsn; a.example",
			"bouncedRecipients": []map[string]string{{"emailAddress": "ann@example.net", "action": "failed", "status": "5.1.1",
				"diagnosticCode": "smtp; 550 5.1.1 no such user"}}},
		"mail": map[string]any{"source": source, "headers": hs}}
}

func TestSESThroughSNS(t *testing.T) {
	f := newFixture(t)
	complaint := map[string]any{"notificationType": "Complaint",
		"complaint": map[string]any{"complaintFeedbackType": "abuse", "userAgent": "Yahoo!-Mail-Feedback/2.0",
			"complainedRecipients": []map[string]string{{"emailAddress": "ann@example.net"}}},
		"mail": map[string]any{"source": "news@example.org", "headers": []map[string]string{{"name": "X-Consentmail-Ref", "value": ref}}}}
	wrongSig := f.sns.Notification(t, topic, "2", sesBounce("Permanent", "", "X-Consentmail-Ref", ref))
	wrongSig = bytes.Replace(wrongSig, []byte(`Permanent`), []byte(`Transient`), 1)
	otherKey := webhookstest.NewSNS(t) // a certificate of its own, not at an SNS host
	for _, tc := range []struct {
		name   string
		body   []byte
		status int
		want   string
	}{
		{"permanent, signature v1, by header", f.sns.Notification(t, topic, "1", sesBounce("Permanent", "x@example.org", "X-Consentmail-Ref", ref)),
			200, "ses hard ann@example.net"},
		{"transient, v2, by return path", f.sns.Notification(t, topic, "2", sesBounce("Transient", "bounce+"+ref+"@bounces.example.org")),
			200, "ses soft ann@example.net"},
		{"complaint", f.sns.Notification(t, topic, "2", complaint), 200, "complaint ann@example.net"},
		{"delivery: nothing to record", f.sns.Notification(t, topic, "2", map[string]any{"notificationType": "Delivery"}), 200, ""},
		{"no reference: quarantined", f.sns.Notification(t, topic, "2", sesBounce("Permanent", "news@example.org")), 200, "quarantine ses webhook"},
		{"forged token: quarantined", f.sns.Notification(t, topic, "2", sesBounce("Permanent", "", "X-Consentmail-Ref", "forged")), 200, "quarantine ses webhook"},
		{"changed after signing", wrongSig, 403, ""},
		{"another topic", f.sns.Notification(t, "arn:aws:sns:eu-west-1:999999999999:theirs", "2", sesBounce("Permanent", "", "X-Consentmail-Ref", ref)), 403, ""},
		{"certificate not on an SNS host", f.sns.Sign(t, webhookstest.Message{Type: "Notification", TopicArn: topic,
			Message: `{"notificationType":"Bounce"}`, SigningCertURL: "https://sns.eu-west-1.amazonaws.com.evil.example/x.pem"}), 403, ""},
		{"certificate over http", f.sns.Sign(t, webhookstest.Message{Type: "Notification", TopicArn: topic,
			Message: `{"notificationType":"Bounce"}`, SigningCertURL: strings.Replace(f.sns.CertURL(), "https:", "http:", 1)}), 403, ""},
		{"signed by another key", otherKey.Sign(t, webhookstest.Message{Type: "Notification", TopicArn: topic,
			Message: `{"notificationType":"Bounce"}`, SigningCertURL: f.sns.CertURL()}), 403, ""},
		{"signature version 3", f.sns.Sign(t, webhookstest.Message{Type: "Notification", TopicArn: topic,
			Message: `{"notificationType":"Bounce"}`, SignatureVersion: "3"}), 403, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f.expect(t, "/webhooks/ses", tc.body, nil, tc.status, tc.want)
		})
	}
	if n := f.sns.Fetched.Load(); n != 1 {
		t.Errorf("certificate fetched %d times, want once", n)
	}

	// A replayed message (same MessageId) is refused; SNS's redelivery after a failure is not.
	msg := f.sns.Notification(t, topic, "2", sesBounce("Transient", "", "X-Consentmail-Ref", ref))
	f.sink.fail = errors.New("disk full")
	if st, _ := f.post(t, "/webhooks/ses", msg, nil); st != 503 {
		t.Errorf("sink failing: %d, want 503", st)
	}
	f.sink.fail = nil
	if st, _ := f.post(t, "/webhooks/ses", msg, nil); st != 200 {
		t.Errorf("redelivery after a failure: %d, want 200", st)
	}
	if st, _ := f.post(t, "/webhooks/ses", msg, nil); st != 403 {
		t.Errorf("replay: %d, want 403", st)
	}
	if got := f.sink.take(); got != "ses soft ann@example.net" {
		t.Errorf("recorded %q, want one soft bounce", got)
	}

	// Subscription confirmation: visited on an SNS host only.
	sub := f.sns.Sign(t, webhookstest.Message{Type: "SubscriptionConfirmation", TopicArn: topic, Token: "tok",
		Message: "You have chosen to subscribe", SubscribeURL: f.sns.Server.URL + "/confirm?Token=tok"})
	if st, body := f.post(t, "/webhooks/ses", sub, nil); st != 200 || f.sns.Confirmed.Load() != 1 {
		t.Errorf("subscription confirmation: %d %s, confirmed %d, want 200 and one visit", st, body, f.sns.Confirmed.Load())
	}
	evil := f.sns.Sign(t, webhookstest.Message{Type: "SubscriptionConfirmation", TopicArn: topic, Token: "tok",
		Message: "You have chosen to subscribe", SubscribeURL: "https://attacker.example/confirm"})
	if st, _ := f.post(t, "/webhooks/ses", evil, nil); st != 403 || f.sns.Confirmed.Load() != 1 {
		t.Errorf("subscription URL off SNS: %d, want 403 and no visit", st)
	}
}

func TestPostmark(t *testing.T) {
	f := newFixture(t)
	auth := func(cred string) map[string]string {
		return map[string]string{"Authorization": "Basic " + base64.StdEncoding.EncodeToString([]byte(cred))}
	}
	good := auth("postmark:correct-horse-battery")
	for _, tc := range []struct {
		name   string
		body   string
		header map[string]string
		status int
		want   string
	}{
		{"hard bounce by metadata", `{"RecordType":"Bounce","Type":"HardBounce","Email":"ann@example.net","Details":"550 5.1.1","Metadata":{"consentmail_ref":"` + ref + `"}}`,
			good, 200, "postmark hard ann@example.net"},
		{"soft bounce by quoted header", `{"RecordType":"Bounce","Type":"SoftBounce","Email":"ann@example.net","Content":"Received: x\r\nX-Consentmail-Ref: ` + ref + `\r\nSubject: hi\r\n"}`,
			good, 200, "postmark soft ann@example.net"},
		{"spam complaint", `{"RecordType":"SpamComplaint","Type":"SpamComplaint","Email":"ann@example.net","Metadata":{"consentmail_ref":"` + ref + `"}}`,
			good, 200, "complaint ann@example.net"},
		{"auto-responder: nothing", `{"RecordType":"Bounce","Type":"AutoResponder","Email":"ann@example.net","Metadata":{"consentmail_ref":"` + ref + `"}}`,
			good, 200, ""},
		{"no reference: quarantined", `{"RecordType":"Bounce","Type":"HardBounce","Email":"ann@example.net"}`, good, 200, "quarantine postmark webhook"},
		{"wrong password", `{"RecordType":"Bounce","Type":"HardBounce","Email":"ann@example.net","Metadata":{"consentmail_ref":"` + ref + `"}}`,
			auth("postmark:wrong"), 401, ""},
		{"no credentials", `{"RecordType":"Bounce","Type":"HardBounce","Email":"ann@example.net","Metadata":{"consentmail_ref":"` + ref + `"}}`,
			nil, 401, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f.expect(t, "/webhooks/postmark", []byte(tc.body), tc.header, tc.status, tc.want)
		})
	}
}

func TestSendGridSignedEvents(t *testing.T) {
	f := newFixture(t)
	events := []byte(`[{"email":"ann@example.net","event":"bounce","type":"bounce","status":"5.1.1","reason":"550 no such user","consentmail_ref":"` + ref + `"},
{"email":"ann@example.net","event":"bounce","type":"blocked","status":"4.0.0","consentmail_ref":"` + ref + `"},
{"email":"ann@example.net","event":"delivered","consentmail_ref":"` + ref + `"},
{"email":"ann@example.net","event":"spamreport","consentmail_ref":"` + ref + `"},
{"email":"bob@example.net","event":"dropped","reason":"Bounced Address"}]`)
	signed := f.sg.Headers(t, events, f.now)
	otherKey := webhookstest.NewSendGrid(t)
	for _, tc := range []struct {
		name   string
		body   []byte
		header map[string]string
		status int
		want   string
	}{
		{"bad signature", events, otherKey.Headers(t, events, f.now), 403, ""},
		{"body changed", bytes.Replace(events, []byte(`"blocked"`), []byte(`"bounce"`), 1), signed, 403, ""},
		{"timestamp changed", events, map[string]string{"X-Twilio-Email-Event-Webhook-Signature": signed["X-Twilio-Email-Event-Webhook-Signature"],
			"X-Twilio-Email-Event-Webhook-Timestamp": "1"}, 403, ""},
		{"six minutes old", events, f.sg.Headers(t, events, f.now.Add(-6*time.Minute)), 403, ""},
		{"no signature", events, nil, 403, ""},
		{"signed", events, signed, 200,
			"sendgrid hard ann@example.net; sendgrid soft ann@example.net; complaint ann@example.net; quarantine sendgrid webhook"},
		{"replayed", events, signed, 403, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f.expect(t, "/webhooks/sendgrid", tc.body, tc.header, tc.status, tc.want)
		})
	}
}

func TestMailgunSignedEvents(t *testing.T) {
	f := newFixture(t)
	failed := func(severity string, attempt int) map[string]any {
		return map[string]any{"event": "failed", "severity": severity, "recipient": "ann@example.net",
			"user-variables":  map[string]any{"consentmail_ref": ref},
			"delivery-status": map[string]any{"code": 550, "message": "no such user", "attempt-no": attempt}}
	}
	byHeader := map[string]any{"event": "complained", "recipient": "ann@example.net",
		"message": map[string]any{"headers": map[string]string{"x-consentmail-ref": ref}}}
	once := webhookstest.Mailgun(t, f.mg, f.now, failed("permanent", 1))
	for _, tc := range []struct {
		name   string
		body   []byte
		status int
		want   string
	}{
		{"permanent", once, 200, "mailgun hard ann@example.net"},
		{"replayed token", once, 403, ""},
		{"temporary, first attempt", webhookstest.Mailgun(t, f.mg, f.now, failed("temporary", 1)), 200, "mailgun soft ann@example.net"},
		{"temporary, a retry: counted already", webhookstest.Mailgun(t, f.mg, f.now, failed("temporary", 2)), 200, ""},
		{"complained, by header", webhookstest.Mailgun(t, f.mg, f.now, byHeader), 200, "complaint ann@example.net"},
		{"by return path", webhookstest.Mailgun(t, f.mg, f.now, map[string]any{"event": "failed", "severity": "permanent",
			"recipient": "ann@example.net", "envelope": map[string]string{"sender": "bounce+" + ref + "@bounces.example.org"}}), 200, "mailgun hard ann@example.net"},
		{"another key", webhookstest.Mailgun(t, []byte("key-not-the-one-configured-here"), f.now, failed("permanent", 1)), 403, ""},
		{"six minutes old", webhookstest.Mailgun(t, f.mg, f.now.Add(-6*time.Minute), failed("permanent", 1)), 403, ""},
		{"event changed", bytes.Replace(webhookstest.Mailgun(t, f.mg, f.now, failed("temporary", 1)), []byte(`"signature":"`), []byte(`"signature":"00`), 1), 403, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f.expect(t, "/webhooks/mailgun", tc.body, nil, tc.status, tc.want)
		})
	}
}

func TestRoutesOnlyWhenConfigured(t *testing.T) {
	app := fiber.New()
	webhooks.New(webhooks.Config{MailgunKey: []byte("k")}, &sink{}, nil, nil, time.Now, slog.New(slog.DiscardHandler), nil).Routes(app)
	var got []string
	for _, r := range app.GetRoutes(true) {
		got = append(got, r.Method+" "+r.Path)
	}
	if strings.Join(got, ",") != "POST /webhooks/mailgun" {
		t.Errorf("routes %v, want only POST /webhooks/mailgun", got)
	}
}
