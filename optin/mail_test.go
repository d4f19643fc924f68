package optin_test

import (
	"context"
	"encoding/json"
	"html"
	"strings"
	"testing"
	"time"

	"github.com/gofiber/fiber/v2"

	"consentmail/mailer/smtptest"
	"consentmail/optin"
	"consentmail/preferences"
	"consentmail/queue"
)

func TestMailerSendsConfirmation(t *testing.T) {
	tests := []struct {
		name       string
		baseURL    string
		list       *preferences.List // signed up for instead of the newsletter
		body       map[string]any
		wantPrefix string // of the confirmation URL
		wantFrom   string
		wantSubj   string
		wantHello  string
	}{
		{name: "english", baseURL: baseURL, body: map[string]any{"name": "Ana"},
			wantPrefix: "http://example.test/confirm/", wantFrom: "newsletter@example.test",
			wantSubj: "Please confirm your subscription", wantHello: "Hello Ana,"},
		{name: "french", baseURL: baseURL, body: map[string]any{"locale": "fr"},
			wantPrefix: "http://example.test/confirm/", wantFrom: "newsletter@example.test",
			wantSubj: "Merci de confirmer votre abonnement", wantHello: "Bonjour,"},
		{name: "french region", baseURL: baseURL, body: map[string]any{"locale": "fr-BE", "name": "Zoé"},
			wantPrefix: "http://example.test/confirm/", wantFrom: "newsletter@example.test",
			wantSubj: "Merci de confirmer votre abonnement", wantHello: "Bonjour Zoé,"},
		{name: "unsupported locale falls back to english", baseURL: baseURL, body: map[string]any{"locale": "de"},
			wantPrefix: "http://example.test/confirm/", wantFrom: "newsletter@example.test",
			wantSubj: "Please confirm your subscription", wantHello: "Hello,"},
		{name: "base URL with a path and a trailing slash", baseURL: "https://news.example.test/mail/",
			wantPrefix: "https://news.example.test/mail/confirm/", wantFrom: "newsletter@example.test",
			wantSubj: "Please confirm your subscription", wantHello: "Hello,"},
		{name: "list with its own sender", baseURL: baseURL,
			list: &preferences.List{ID: "events", Name: "Events", Purpose: "Invitations", ConsentText: "Yes.",
				Public: true, From: "Events <events@example.test>"},
			wantPrefix: "http://example.test/confirm/", wantFrom: "events@example.test",
			wantSubj: "Please confirm your subscription", wantHello: "Hello,"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t, func(c *optin.Config) { c.BaseURL = tc.baseURL })
			body := signup("ana@example.org")
			for k, v := range tc.body {
				body[k] = v
			}
			listName := newsletter.Name
			if tc.list != nil {
				e.createList(t, *tc.list)
				body["lists"] = []string{tc.list.ID}
				listName = tc.list.Name
			}
			e.mustAccept(t, body)
			m := e.deliverOne(t)

			if m.ParseError != "" {
				t.Fatalf("mail is not valid MIME: %s", m.ParseError)
			}
			if m.Subject != tc.wantSubj {
				t.Errorf("subject: got %q, want %q", m.Subject, tc.wantSubj)
			}
			if got := strings.Join(m.To, ","); got != "ana@example.org" {
				t.Errorf("recipient: got %q, want ana@example.org", got)
			}
			if got := m.Header.Get("From"); !strings.Contains(got, tc.wantFrom) {
				t.Errorf("From: got %q, want %s", got, tc.wantFrom)
			}
			if ct := m.Header.Get("Content-Type"); !strings.HasPrefix(ct, "multipart/alternative") {
				t.Errorf("Content-Type: got %q, want multipart/alternative", ct)
			}
			if got := m.Header.Get("Auto-Submitted"); got != "auto-generated" {
				t.Errorf("Auto-Submitted: got %q, want auto-generated", got)
			}
			if m.Text == "" || m.HTML == "" {
				t.Fatalf("parts: got text %d bytes and HTML %d bytes, want both", len(m.Text), len(m.HTML))
			}
			link := confirmURL.FindString(m.Text)
			if !strings.HasPrefix(link, tc.wantPrefix) {
				t.Errorf("confirmation URL in the text part: got %q, want it to start %q", link, tc.wantPrefix)
			}
			if !strings.Contains(m.HTML, `href="`+html.EscapeString(link)+`"`) {
				t.Errorf("HTML part: no link to %q in\n%s", link, m.HTML)
			}
			for _, part := range []struct{ name, s string }{{"text", m.Text}, {"HTML", html.UnescapeString(m.HTML)}} {
				if !strings.Contains(part.s, tc.wantHello) {
					t.Errorf("%s part: want greeting %q in\n%s", part.name, tc.wantHello, part.s)
				}
				if !strings.Contains(part.s, listName) {
					t.Errorf("%s part: want list %q named", part.name, listName)
				}
			}
			// The link works: it leads to the confirmation page.
			path := strings.TrimPrefix(link, strings.TrimSuffix(tc.wantPrefix, "/confirm/"))
			wantHTML(t, e.get(t, path), fiber.StatusOK)

			evs := e.events(t, preferences.EventConfirmationSent)
			if len(evs) != 1 {
				t.Fatalf("confirmation_sent events: got %d, want 1", len(evs))
			}
			if got, want := evs[0].Details["message_id"], m.Header.Get("Message-Id"); got == "" || got != want {
				t.Errorf("confirmation_sent message_id: got %q, want the mail's %q", got, want)
			}
		})
	}
}

// handleOne reserves the one queued message and runs the Mailer on it.
func (e *env) handleOne(tb testing.TB) error {
	tb.Helper()
	ds := e.reserve(tb)
	if len(ds) != 1 {
		tb.Fatalf("queued messages: got %d, want 1", len(ds))
	}
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	return e.mailer.Handle(ctx, ds[0])
}

func TestMailerSkipsWhatIsNoLongerPending(t *testing.T) {
	e := newEnv(t)
	e.mustAccept(t, signup("ana@example.org"))
	ds := e.reserve(t)
	if len(ds) != 1 {
		t.Fatalf("queued messages: got %d, want 1", len(ds))
	}
	var req preferences.OptinRequest
	if err := json.Unmarshal(ds[0].Body, &req); err != nil {
		t.Fatalf("queued body %s: %v", ds[0].Body, err)
	}
	other := req
	other.Nonce = "not-this-round"
	stranger := preferences.OptinRequest{Subscriber: "sub_000000000000000000000000", Lists: []string{"newsletter"}, Nonce: req.Nonce}

	// The person confirms (say, with a link from a mail sent through another worker)
	// before this message is handled.
	tok := optin.ConfirmToken(e.signer, req, e.clock.Now().Add(optinTTL))
	wantHTML(t, e.post(t, confirmPath(tok)), fiber.StatusOK)

	tests := []struct {
		name string
		d    queue.Delivery
	}{
		{"confirmed meanwhile", ds[0]},
		{"round replaced", queue.Delivery{Message: queue.Message{ID: "x1", Kind: optin.KindOptin, Body: mustJSON(t, other)}}},
		{"unknown subscriber", queue.Delivery{Message: queue.Message{ID: "x2", Kind: optin.KindOptin, Body: mustJSON(t, stranger)}}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if err := e.mailer.Handle(context.Background(), tc.d); err != nil {
				t.Fatalf("Handle: got %v, want nil (acknowledged without sending)", err)
			}
			if n := e.sink.Received(); n != 0 {
				t.Errorf("mails sent: got %d, want 0", n)
			}
			if n := len(e.events(t, preferences.EventConfirmationSent)); n != 0 {
				t.Errorf("confirmation_sent events: got %d, want 0", n)
			}
		})
	}
	e.ack(t, ds...)
}

func mustJSON(tb testing.TB, v any) []byte {
	tb.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		tb.Fatal(err)
	}
	return b
}

func TestMailerFailures(t *testing.T) {
	tests := []struct {
		name      string
		code      int // SMTP reply to RCPT TO; 0 for none
		body      []byte
		permanent bool
	}{
		{name: "relay says try later", code: 451, permanent: false},
		{name: "relay refuses the recipient", code: 550, permanent: true},
		{name: "undecodable message", body: []byte("{not json"), permanent: true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t)
			var err error
			if tc.body != nil {
				err = e.mailer.Handle(context.Background(), queue.Delivery{Message: queue.Message{ID: "x", Kind: optin.KindOptin, Body: tc.body}})
			} else {
				e.sink.FailRcpt(smtptest.Reject(tc.code, "ana@example.org"))
				e.mustAccept(t, signup("ana@example.org"))
				err = e.handleOne(t)
			}
			if err == nil {
				t.Fatalf("Handle: got nil, want an error")
			}
			if got := queue.IsPermanent(err); got != tc.permanent {
				t.Errorf("IsPermanent(%v): got %v, want %v", err, got, tc.permanent)
			}
			if n := e.sink.Received(); n != 0 {
				t.Errorf("mails accepted by the relay: got %d, want 0", n)
			}
			if n := len(e.events(t, preferences.EventConfirmationSent)); n != 0 {
				t.Errorf("confirmation_sent events: got %d, want 0", n)
			}
		})
	}
}

// The link's expiry counts from the moment the mail is sent.
func TestMailerLinkLifetime(t *testing.T) {
	e := newEnv(t)
	e.mustAccept(t, signup("ana@example.org"))
	e.clock.Advance(time.Hour) // the worker is late
	tok := tokenOf(t, e.deliverOne(t))
	e.clock.Advance(optinTTL - time.Second)
	wantHTML(t, e.get(t, confirmPath(tok)), fiber.StatusOK)
	e.clock.Advance(time.Second)
	wantHTML(t, e.get(t, confirmPath(tok)), fiber.StatusGone)
}

// ForSubscriber knows a confirmation mail by its subscriber, and nothing else.
func TestForSubscriber(t *testing.T) {
	body, err := json.Marshal(preferences.OptinRequest{Subscriber: "sub_a", Lists: []string{"newsletter"}, Nonce: "n"})
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		m    queue.Message
		sub  string
		want bool
	}{
		{"its subscriber", queue.Message{Kind: optin.KindOptin, Body: body}, "sub_a", true},
		{"someone else", queue.Message{Kind: optin.KindOptin, Body: body}, "sub_b", false},
		{"another kind", queue.Message{Kind: "datalink", Body: body}, "sub_a", false},
		{"garbled body", queue.Message{Kind: optin.KindOptin, Body: []byte("{")}, "sub_a", false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := optin.ForSubscriber(tc.m, tc.sub); got != tc.want {
				t.Errorf("ForSubscriber(%s, %s) = %v, want %v", tc.m.Kind, tc.sub, got, tc.want)
			}
		})
	}
}
