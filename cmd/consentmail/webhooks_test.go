package main

import (
	"bytes"
	"context"
	"encoding/base64"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"consentmail/mailer/smtptest"
	"consentmail/mailer/webhooks"
	"consentmail/mailer/webhooks/webhookstest"
	"consentmail/preferences/inboundmail"
	"consentmail/preferences/linktoken"
)

const (
	webhookMailgunKey   = "key-0123456789abcdef0123456789abcdef"
	webhookPostmarkAuth = "postmark:correct-horse-battery-staple"
	webhookTopic        = "arn:aws:sns:eu-west-1:123456789012:ses-feedback"
)

// post sends body with headers to the server and returns the status.
func (c *client) post(path string, body []byte, header map[string]string) int {
	c.tb.Helper()
	var kv []string
	for k, v := range header {
		kv = append(kv, k, v)
	}
	st, _ := c.do("POST", path, "application/json", string(body), kv...)
	return st
}

// TestWebhooksEndToEnd posts signed Postmark, SendGrid and Mailgun events to the
// server run() starts, with keys the test makes: bounces block, complaints unsubscribe
// from every list and count in the campaign's stats; a bad signature, wrong
// credentials and an old timestamp change nothing; an event naming no message is
// quarantined.
func TestWebhooksEndToEnd(t *testing.T) {
	sink := smtptest.New(t)
	dir := t.TempDir()
	people := seedTwoLists(t, dir, "wh", 6)
	sg := webhookstest.NewSendGrid(t)
	env := serveEnv(dir, sink.URL())
	env["CONSENTMAIL_WEBHOOK_POSTMARK_AUTH"] = webhookPostmarkAuth
	env["CONSENTMAIL_WEBHOOK_SENDGRID_KEY"] = sg.PublicKey(t)
	env["CONSENTMAIL_WEBHOOK_MAILGUN_KEY"] = webhookMailgunKey
	srv := startServer(t, env, "serve")
	c := newClient(t, srv.BaseURL)
	campaign := c.startCampaign("weekly", "Winter news")
	c.waitFinished(campaign)

	signer := inboundSigner([]byte(testSecret))
	person := func(i int) string { return people[strings.Replace("wh-000X@example.org", "X", string(rune('0'+i)), 1)] }
	tok := func(i int) string {
		tk, err := linktoken.Bounce(signer, person(i), campaign)
		if err != nil {
			t.Fatal(err)
		}
		return tk
	}
	// Without inbound SMTP, each message still carries its reference, also where
	// SendGrid and Postmark echo it back; no VERP, no mailto.
	for _, m := range sink.WaitFor(t, 6, 10*time.Second) {
		var i int
		if _, err := fmt.Sscanf(m.To[0], "wh-%04d@example.org", &i); err != nil {
			t.Fatalf("recipient %q", m.To[0])
		}
		ref := tok(i)
		if m.Header.Get("X-Consentmail-Ref") != ref || m.Header.Get("X-PM-Metadata-consentmail_ref") != ref ||
			m.Header.Get("X-SMTPAPI") != `{"unique_args":{"consentmail_ref":"`+ref+`"}}` {
			t.Errorf("%s: reference headers %q %q %q, want %s", m.To[0], m.Header.Get("X-Consentmail-Ref"),
				m.Header.Get("X-PM-Metadata-consentmail_ref"), m.Header.Get("X-SMTPAPI"), ref)
		}
		if strings.HasPrefix(m.From, "bounce+") || strings.Contains(m.Header.Get("List-Unsubscribe"), "mailto:") {
			t.Errorf("%s: return path %q, List-Unsubscribe %q: inbound addresses without inbound SMTP", m.To[0], m.From,
				m.Header.Get("List-Unsubscribe"))
		}
	}
	basic := func(cred string) map[string]string {
		return map[string]string{"Authorization": "Basic " + base64.StdEncoding.EncodeToString([]byte(cred))}
	}
	now := time.Now()

	// Refused: nothing changes for person 3.
	sgBody := []byte(`[{"email":"wh-0003@example.org","event":"bounce","type":"bounce","status":"5.1.1","consentmail_ref":"` + tok(3) + `"}]`)
	forged := webhookstest.NewSendGrid(t)
	complaint3 := map[string]any{"event": "complained", "recipient": "x", "user-variables": map[string]string{"consentmail_ref": tok(3)}}
	for _, tc := range []struct {
		name      string
		got, want int
	}{
		{"sendgrid, another key", c.post("/webhooks/sendgrid", sgBody, forged.Headers(t, sgBody, now)), 403},
		{"sendgrid, 6 min old", c.post("/webhooks/sendgrid", sgBody, sg.Headers(t, sgBody, now.Add(-6*time.Minute))), 403},
		{"mailgun, another key", c.post("/webhooks/mailgun",
			webhookstest.Mailgun(t, []byte("key-someone-elses-key-000000000"), now, complaint3), nil), 403},
		{"mailgun, 6 min old", c.post("/webhooks/mailgun",
			webhookstest.Mailgun(t, []byte(webhookMailgunKey), now.Add(-6*time.Minute), complaint3), nil), 403},
		{"postmark, wrong password", c.post("/webhooks/postmark",
			[]byte(`{"RecordType":"SpamComplaint","Email":"x","Metadata":{"consentmail_ref":"`+tok(3)+`"}}`), basic("postmark:wrong")), 401},
		{"ses, not configured", c.post("/webhooks/ses", []byte(`{}`), nil), 404},
	} {
		if tc.got != tc.want {
			t.Errorf("%s: %d, want %d", tc.name, tc.got, tc.want)
		}
	}
	if st, subs := c.subscriberState(person(3)); st != "active" || subs["weekly"] != "confirmed" || subs["offers"] != "confirmed" {
		t.Errorf("after refused requests: %s %v, want active and subscribed", st, subs)
	}

	// SendGrid: a hard bounce blocks person 0.
	sgBody = []byte(`[{"email":"wh-0000@example.org","event":"bounce","type":"bounce","status":"5.1.1","reason":"550 5.1.1 no such user","consentmail_ref":"` + tok(0) + `"}]`)
	if st := c.post("/webhooks/sendgrid", sgBody, sg.Headers(t, sgBody, now)); st != 200 {
		t.Errorf("sendgrid bounce: %d, want 200", st)
	}
	// Mailgun: a complaint unsubscribes person 1 from every list.
	if st := c.post("/webhooks/mailgun", webhookstest.Mailgun(t, []byte(webhookMailgunKey), now, map[string]any{"event": "complained",
		"recipient": "wh-0001@example.org", "user-variables": map[string]string{"consentmail_ref": tok(1)}}), nil); st != 200 {
		t.Errorf("mailgun complaint: %d, want 200", st)
	}
	// Postmark: a hard bounce blocks person 2; one naming no message is quarantined.
	good := basic(webhookPostmarkAuth)
	if st := c.post("/webhooks/postmark", []byte(`{"RecordType":"Bounce","Type":"HardBounce","Email":"wh-0002@example.org","Details":"550 5.1.1","Metadata":{"consentmail_ref":"`+tok(2)+`"}}`), good); st != 200 {
		t.Errorf("postmark bounce: %d, want 200", st)
	}
	if st := c.post("/webhooks/postmark", []byte(`{"RecordType":"Bounce","Type":"HardBounce","Email":"stranger@example.net"}`), good); st != 200 {
		t.Errorf("postmark bounce naming nothing: %d, want 200", st)
	}

	for i, want := range []string{"blocked", "active", "blocked", "active"} {
		if st, _ := c.subscriberState(person(i)); st != want {
			t.Errorf("person %d: %s, want %s", i, st, want)
		}
	}
	if _, subs := c.subscriberState(person(1)); subs["weekly"] != "unsubscribed" || subs["offers"] != "unsubscribed" {
		t.Errorf("after the complaint: %v, want every list unsubscribed", subs)
	}
	if evs := c.ledger("type=bounced&subscriber=" + person(0)); len(evs) != 1 || evs[0].Details["source"] != "webhook:sendgrid" ||
		evs[0].Details["campaign"] != campaign || evs[0].Details["recipient"] != "wh-0000@example.org" {
		t.Errorf("bounced events %+v, want one from the SendGrid webhook for the campaign", evs)
	}
	var stats campaignCounters
	c.admin("GET", "/api/v1/campaigns/"+campaign, "", &stats)
	if s := stats.Stats; s.Bounced != 2 || s.Complained != 1 {
		t.Errorf("campaign stats %+v, want bounced 2, complained 1", s)
	}
	var q struct {
		Count    int `json:"count"`
		Messages []struct {
			From    string `json:"mail_from"`
			Message string `json:"message"`
		} `json:"messages"`
	}
	if st := c.admin("GET", "/api/v1/inbound/quarantine", "", &q); st != 200 || q.Count != 1 ||
		q.Messages[0].From != "postmark webhook" || !strings.Contains(q.Messages[0].Message, "stranger@example.net") {
		t.Errorf("quarantine %d %+v, want the Postmark event naming nothing", st, q)
	}
	if m := c.metrics(); !strings.Contains(m, `consentmail_webhook_events_total{relay="sendgrid",result="bounce"} 1`) {
		t.Error("metrics lack the SendGrid bounce")
	}
}

type noCampaigns struct{}

func (noCampaigns) Lists(context.Context, string) ([]string, error) { return nil, nil }
func (noCampaigns) Bounced(context.Context, string, string)         {}
func (noCampaigns) Complained(context.Context, string, string)      {}
func (noCampaigns) Unsubscribed(context.Context, string)            {}

// TestWebhookSESThroughSNS posts SNS-signed SES notifications (a certificate the test
// makes, served over TLS on loopback in place of sns.REGION.amazonaws.com) to the
// webhook handler over the real store and inbound handler: a permanent bounce blocks,
// a complaint unsubscribes from every list, a forged signature changes nothing.
func TestWebhookSESThroughSNS(t *testing.T) {
	dir := t.TempDir()
	people := seedTwoLists(t, dir, "ses", 3)
	store, done := openTestStore(t, dir)
	defer done()
	log := slog.New(slog.DiscardHandler)
	sns := webhookstest.NewSNS(t)
	h := webhooks.New(webhooks.Config{SESTopics: []string{webhookTopic}},
		inboundmail.New(store, inboundSigner([]byte(testSecret)), noCampaigns{}, nil, log, nil),
		sns.Server.Client(), webhookstest.HostPattern, time.Now, log, nil)
	app := newApp(log, nil, nil)
	h.Routes(app)
	signer := inboundSigner([]byte(testSecret))
	id := func(i int) string { return people["ses-000"+string(rune('0'+i))+"@example.org"] }
	ref := func(i int) []map[string]string {
		tk, err := linktoken.Bounce(signer, id(i), "")
		if err != nil {
			t.Fatal(err)
		}
		return []map[string]string{{"name": "X-Consentmail-Ref", "value": tk}}
	}
	post := func(body []byte) int {
		t.Helper()
		res, err := app.Test(httptest.NewRequest("POST", "/webhooks/ses", bytes.NewReader(body)), 10000)
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, res.Body)
		return res.StatusCode
	}
	bounce := func(i int) map[string]any {
		return map[string]any{"notificationType": "Bounce", "bounce": map[string]any{"bounceType": "Permanent",
			"bouncedRecipients": []map[string]string{{"emailAddress": "x@example.org", "status": "5.1.1"}}},
			"mail": map[string]any{"headers": ref(i)}}
	}
	forged := sns.Notification(t, webhookTopic, "2", bounce(2))
	forged = bytes.Replace(forged, []byte(`"Signature":"`), []byte(`"Signature":"AAAA`), 1)
	for _, tc := range []struct {
		name string
		body []byte
		want int
	}{
		{"bounce", sns.Notification(t, webhookTopic, "1", bounce(0)), http.StatusOK},
		{"complaint", sns.Notification(t, webhookTopic, "2", map[string]any{"notificationType": "Complaint",
			"complaint": map[string]any{"complaintFeedbackType": "abuse"}, "mail": map[string]any{"headers": ref(1)}}), http.StatusOK},
		{"forged", forged, http.StatusForbidden},
	} {
		if st := post(tc.body); st != tc.want {
			t.Errorf("%s: %d, want %d", tc.name, st, tc.want)
		}
	}
	for i, want := range []string{"blocked", "active:unsubscribed", "active:confirmed"} {
		sub, err := store.Subscriber(context.Background(), id(i))
		if err != nil {
			t.Fatal(err)
		}
		got := sub.Status
		if sub.Status == "active" {
			got += ":" + sub.Subscriptions[0].Status
			for _, s := range sub.Subscriptions[1:] {
				if s.Status != sub.Subscriptions[0].Status {
					got += "/" + s.Status
				}
			}
		}
		if got != want {
			t.Errorf("person %d: %s, want %s", i, got, want)
		}
	}
}

// A malformed webhook setting stops the start, naming the variable.
func TestWebhookConfigurationErrors(t *testing.T) {
	for _, tc := range []struct{ name, env, value string }{
		{"topic no ARN", "CONSENTMAIL_WEBHOOK_SES_TOPICS", "ses-feedback"},
		{"postmark without password", "CONSENTMAIL_WEBHOOK_POSTMARK_AUTH", "postmark"},
		{"postmark short password", "CONSENTMAIL_WEBHOOK_POSTMARK_AUTH", "postmark:short"},
		{"sendgrid key not base64", "CONSENTMAIL_WEBHOOK_SENDGRID_KEY", "not a key!"},
		{"sendgrid key no ECDSA key", "CONSENTMAIL_WEBHOOK_SENDGRID_KEY", base64.StdEncoding.EncodeToString([]byte("0123456789"))},
		{"mailgun key short", "CONSENTMAIL_WEBHOOK_MAILGUN_KEY", "key-1"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			env := map[string]string{"CONSENTMAIL_DATA_DIR": t.TempDir(), "CONSENTMAIL_HTTP_ADDR": "127.0.0.1:0",
				"CONSENTMAIL_SECRET": testSecret, "CONSENTMAIL_SMTP_URL": "smtp://127.0.0.1:2525?tls=none", tc.env: tc.value}
			err := run(context.Background(), []string{"consentmail", "serve"}, environ(env), io.Discard, io.Discard)
			if err == nil || !strings.Contains(err.Error(), tc.env) {
				t.Fatalf("got %v, want an error naming %s", err, tc.env)
			}
		})
	}
}
