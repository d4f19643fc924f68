package mailer_test

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emersion/go-msgauth/dkim"
	"github.com/emersion/go-smtp"

	"consentmail/mailer"
	"consentmail/mailer/smtptest"
)

const wait = 10 * time.Second

// newSender returns a Sender for relays, closed when the test ends.
func newSender(tb testing.TB, relays []mailer.Relay, opts mailer.Options) *mailer.Sender {
	tb.Helper()
	if opts.HeloName == "" {
		opts.HeloName = "test.localhost"
	}
	s, err := mailer.NewSender(relays, opts)
	if err != nil {
		tb.Fatalf("NewSender: %v", err)
	}
	tb.Cleanup(func() { s.Close() })
	return s
}

func relaysOf(tb testing.TB, url string) []mailer.Relay {
	tb.Helper()
	rs, err := mailer.ParseRelays(url)
	if err != nil {
		tb.Fatalf("ParseRelays(%q): %v", url, err)
	}
	return rs
}

func TestSendArrivesIntact(t *testing.T) {
	date := time.Date(2026, 3, 1, 9, 30, 0, 0, time.UTC)
	tests := []struct {
		name  string
		msg   mailer.Message
		check func(t *testing.T, m mailer.CaughtMessage)
	}{
		{
			name: "text only",
			msg: mailer.Message{
				From: "Newsletter <news@example.org>", To: "ana@example.org", Subject: "Hello",
				Text: "Line one\nA long line " + strings.Repeat("x", 200) + "\n.starts with a dot\nhttp://127.0.0.1:8080/confirm/xyz",
			},
			check: func(t *testing.T, m mailer.CaughtMessage) {
				want := "Line one\nA long line " + strings.Repeat("x", 200) + "\n.starts with a dot\nhttp://127.0.0.1:8080/confirm/xyz"
				if strings.TrimRight(m.Text, "\n") != want {
					t.Errorf("Text = %q, want %q", m.Text, want)
				}
				if m.HTML != "" {
					t.Errorf("HTML = %q, want none", m.HTML)
				}
				if ct := m.Header.Get("Content-Type"); !strings.HasPrefix(ct, "text/plain") {
					t.Errorf("Content-Type = %q, want text/plain", ct)
				}
			},
		},
		{
			name: "html only",
			msg: mailer.Message{
				From: "news@example.org", To: "ana@example.org", Subject: "Hi",
				HTML: `<p style="color:red">Bonjour <a href="https://example.org/?a=1&amp;b=2">là</a></p>`,
			},
			check: func(t *testing.T, m mailer.CaughtMessage) {
				if want := `<p style="color:red">Bonjour <a href="https://example.org/?a=1&amp;b=2">là</a></p>`; strings.TrimSuffix(m.HTML, "\n") != want {
					t.Errorf("HTML = %q, want %q", m.HTML, want)
				}
				if m.Text != "" {
					t.Errorf("Text = %q, want none", m.Text)
				}
			},
		},
		{
			name: "text and html",
			msg: mailer.Message{
				From: "news@example.org", To: "ana@example.org", Subject: "Both",
				Text: "plain version", HTML: "<b>html version</b>",
			},
			check: func(t *testing.T, m mailer.CaughtMessage) {
				if ct := m.Header.Get("Content-Type"); !strings.HasPrefix(ct, "multipart/alternative") {
					t.Errorf("Content-Type = %q, want multipart/alternative", ct)
				}
				if m.Text != "plain version" || m.HTML != "<b>html version</b>" {
					t.Errorf("Text, HTML = %q, %q; want %q, %q", m.Text, m.HTML, "plain version", "<b>html version</b>")
				}
			},
		},
		{
			name: "custom headers, message id, date, return path",
			msg: mailer.Message{
				From: "news@example.org", To: "ana@example.org", Subject: "Headers",
				ReturnPath: "bounce+abc@bounces.example.org",
				Text:       "x",
				Headers: map[string]string{
					"List-Unsubscribe":      "<https://example.org/u/tok>, <mailto:unsubscribe+tok@example.org>",
					"List-Unsubscribe-Post": "List-Unsubscribe=One-Click",
					"List-Id":               "Newsletter <newsletter.example.org>",
				},
				MessageID: "<fixed-1@example.org>",
				Date:      date,
			},
			check: func(t *testing.T, m mailer.CaughtMessage) {
				for k, want := range map[string]string{
					"List-Unsubscribe":      "<https://example.org/u/tok>, <mailto:unsubscribe+tok@example.org>",
					"List-Unsubscribe-Post": "List-Unsubscribe=One-Click",
					"List-Id":               "Newsletter <newsletter.example.org>",
					"Message-Id":            "<fixed-1@example.org>",
					"Date":                  "Sun, 01 Mar 2026 09:30:00 +0000",
				} {
					if got := m.Header.Get(k); got != want {
						t.Errorf("header %s = %q, want %q", k, got, want)
					}
				}
				if m.From != "bounce+abc@bounces.example.org" {
					t.Errorf("envelope from = %q, want the return path", m.From)
				}
				if got := m.Header.Get("From"); got != "<news@example.org>" {
					t.Errorf("From header = %q, want <news@example.org>", got)
				}
			},
		},
		{
			name: "non-ASCII subject, names and IDN domain",
			msg: mailer.Message{
				From: "Équipe Café <news@example.org>", To: "Zoë Ünal <zoe@exämple.org>",
				Subject: "Confirmez votre inscription — merci ! 🎉 " + strings.Repeat("é", 60),
				Text:    "Déjà vu: ça marche.",
			},
			check: func(t *testing.T, m mailer.CaughtMessage) {
				if want := "Confirmez votre inscription — merci ! 🎉 " + strings.Repeat("é", 60); m.Subject != want {
					t.Errorf("Subject = %q, want %q", m.Subject, want)
				}
				if raw := m.Header.Get("Subject"); !strings.HasPrefix(raw, "=?UTF-8?") {
					t.Errorf("raw Subject %q is not RFC 2047-encoded", raw)
				}
				if strings.TrimSuffix(m.Text, "\n") != "Déjà vu: ça marche." {
					t.Errorf("Text = %q", m.Text)
				}
				if len(m.To) != 1 || m.To[0] != "zoe@xn--exmple-cua.org" {
					t.Errorf("envelope to = %q, want the A-label", m.To)
				}
				if from := m.Header.Get("From"); !strings.Contains(from, "=?") {
					t.Errorf("From %q: display name not encoded", from)
				}
			},
		},
	}
	sink := smtptest.New(t)
	s := newSender(t, relaysOf(t, sink.URL()), mailer.Options{})
	for i, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if err := s.Send(context.Background(), &tc.msg); err != nil {
				t.Fatalf("Send: %v", err)
			}
			msgs := sink.WaitFor(t, i+1, wait)
			m := msgs[0]
			if m.Header.Get("Message-Id") == "" || m.Header.Get("Date") == "" || m.Header.Get("Mime-Version") != "1.0" {
				t.Errorf("missing Message-ID, Date or MIME-Version in %v", m.Header)
			}
			tc.check(t, m)
		})
	}
}

func TestSendGeneratesUniqueMessageIDs(t *testing.T) {
	sink := smtptest.New(t)
	s := newSender(t, relaysOf(t, sink.URL()), mailer.Options{})
	for range 3 {
		if err := s.Send(context.Background(), &mailer.Message{From: "news@example.org", To: "a@example.net", Subject: "s", Text: "t"}); err != nil {
			t.Fatal(err)
		}
	}
	seen := map[string]bool{}
	for _, m := range sink.WaitFor(t, 3, wait) {
		id := m.Header.Get("Message-Id")
		if !strings.HasSuffix(id, "@example.org>") || !strings.HasPrefix(id, "<") {
			t.Errorf("Message-ID %q, want <random@example.org>", id)
		}
		if seen[id] {
			t.Errorf("Message-ID %q used twice", id)
		}
		seen[id] = true
	}
}

func TestSendRefusesBadMessages(t *testing.T) {
	ok := mailer.Message{From: "news@example.org", To: "ana@example.org", Subject: "s", Text: "t"}
	tests := []struct {
		name      string
		edit      func(m *mailer.Message)
		injection bool
	}{
		{"CRLF in subject", func(m *mailer.Message) { m.Subject = "Hi\r\nBcc: victim@example.com" }, true},
		{"LF in subject", func(m *mailer.Message) { m.Subject = "Hi\nX: y" }, true},
		{"CR in To", func(m *mailer.Message) { m.To = "ana@example.org\rBcc: x@example.com" }, true},
		{"LF in From", func(m *mailer.Message) { m.From = "A\n <news@example.org>" }, true},
		{"CRLF in return path", func(m *mailer.Message) { m.ReturnPath = "b@example.org\r\nRCPT TO:<x@example.com>" }, true},
		{"CRLF in header value", func(m *mailer.Message) { m.Headers = map[string]string{"List-Id": "x\r\nBcc: y@example.com"} }, true},
		{"LF in header name", func(m *mailer.Message) { m.Headers = map[string]string{"X-A\nBcc": "y@example.com"} }, true},
		{"CRLF in message id", func(m *mailer.Message) { m.MessageID = "<a@b>\r\nBcc: c@d" }, true},
		{"bad To", func(m *mailer.Message) { m.To = "not an address" }, false},
		{"two To", func(m *mailer.Message) { m.To = "a@example.org, b@example.org" }, false},
		{"empty From", func(m *mailer.Message) { m.From = "" }, false},
		{"bad header name", func(m *mailer.Message) { m.Headers = map[string]string{"X Bad": "v"} }, false},
		{"reserved header", func(m *mailer.Message) { m.Headers = map[string]string{"bcc": "x@example.com"} }, false},
		{"no body", func(m *mailer.Message) { m.Text = "" }, false},
		{"bad message id", func(m *mailer.Message) { m.MessageID = "no-at-sign" }, false},
	}
	sink := smtptest.New(t)
	s := newSender(t, relaysOf(t, sink.URL()), mailer.Options{})
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			m := ok
			tc.edit(&m)
			err := s.Send(context.Background(), &m)
			if err == nil {
				t.Fatal("Send succeeded, want an error")
			}
			var se *mailer.SendError
			if !errors.As(err, &se) || se.Temporary || mailer.IsTemporary(err) {
				t.Errorf("err = %#v, want a permanent *SendError", err)
			}
			if got := errors.Is(err, mailer.ErrHeaderInjection); got != tc.injection {
				t.Errorf("errors.Is(%v, ErrHeaderInjection) = %v, want %v", err, got, tc.injection)
			}
		})
	}
	// Validation happens before any connection: the sink never heard from us.
	if n := sink.Connections(); n != 0 {
		t.Errorf("sink accepted %d connection(s), want 0", n)
	}
	if n := sink.Received(); n != 0 {
		t.Errorf("sink received %d message(s), want 0", n)
	}
}

func TestConnectionsAreReused(t *testing.T) {
	sink := smtptest.New(t)
	s := newSender(t, relaysOf(t, sink.URL()+"&max_conns=1"), mailer.Options{})
	const n = 50
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for i := range n {
		wg.Go(func() {
			errs <- s.Send(context.Background(), &mailer.Message{
				From: "news@example.org", To: fmt.Sprintf("r%d@example.net", i), Subject: "s", Text: "t",
			})
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatalf("Send: %v", err)
		}
	}
	sink.WaitFor(t, n, wait)
	if got := sink.Connections(); got != 1 {
		t.Errorf("sink accepted %d connections for %d messages with max_conns=1, want 1", got, n)
	}
	if got := s.Dials(); got != 1 {
		t.Errorf("Dials() = %d, want 1", got)
	}
}

func TestBrokenConnectionIsRedialled(t *testing.T) {
	sink := smtptest.New(t)
	s := newSender(t, relaysOf(t, sink.URL()+"&max_conns=1"), mailer.Options{})
	msg := &mailer.Message{From: "news@example.org", To: "ana@example.org", Subject: "s", Text: "t"}
	if err := s.Send(context.Background(), msg); err != nil {
		t.Fatal(err)
	}
	sink.WaitFor(t, 1, wait)
	sink.DropConnections() // the relay restarts; our idle connection is now dead
	if err := s.Send(context.Background(), msg); err != nil {
		t.Fatalf("Send after the connection broke: %v", err)
	}
	sink.WaitFor(t, 2, wait)
	if got := sink.Connections(); got != 2 {
		t.Errorf("sink accepted %d connections, want 2 (one redial)", got)
	}
	if got := sink.Received(); got != 2 {
		t.Errorf("sink received %d messages, want 2 (no duplicate)", got)
	}
}

func TestReplyClassification(t *testing.T) {
	tests := []struct {
		name      string
		atData    bool
		code      int
		temporary bool
	}{
		{"451 at RCPT", false, 451, true},
		{"452 at RCPT", false, 452, true},
		{"550 at RCPT", false, 550, false},
		{"553 at RCPT", false, 553, false},
		{"451 after DATA", true, 451, true},
		{"554 after DATA", true, 554, false},
	}
	sink := smtptest.New(t)
	s := newSender(t, relaysOf(t, sink.URL()+"&max_conns=1"), mailer.Options{})
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f := smtptest.Reject(tc.code, "bad@example.org")
			if tc.atData {
				sink.FailData(f)
				t.Cleanup(func() { sink.FailData(nil) })
			} else {
				sink.FailRcpt(f)
				t.Cleanup(func() { sink.FailRcpt(nil) })
			}
			before := sink.Received()
			err := s.Send(context.Background(), &mailer.Message{From: "news@example.org", To: "bad@example.org", Subject: "s", Text: "t"})
			var se *mailer.SendError
			if !errors.As(err, &se) {
				t.Fatalf("err = %v, want a *SendError", err)
			}
			if se.Code != tc.code || se.Temporary != tc.temporary || mailer.IsTemporary(err) != tc.temporary {
				t.Errorf("got Code %d Temporary %v (IsTemporary %v), want %d %v", se.Code, se.Temporary, mailer.IsTemporary(err), tc.code, tc.temporary)
			}
			// The connection survives a refusal: the next message goes through on it.
			if err := s.Send(context.Background(), &mailer.Message{From: "news@example.org", To: "good@example.org", Subject: "s", Text: "t"}); err != nil {
				t.Fatalf("Send to an accepted recipient: %v", err)
			}
			if got := sink.Received(); got != before+1 {
				t.Errorf("sink received %d new messages, want 1", got-before)
			}
		})
	}
	if got := sink.Connections(); got != 1 {
		t.Errorf("sink accepted %d connections, want 1: refusals must not cost the connection", got)
	}
	if mailer.IsTemporary(nil) || mailer.IsTemporary(errors.New("other")) {
		t.Error("IsTemporary is true for nil or a foreign error")
	}
}

// closedPort returns a loopback address nothing listens on.
func closedPort(tb testing.TB) string {
	tb.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return addr
}

func TestFailoverToNextRelay(t *testing.T) {
	sink := smtptest.New(t)
	dead := closedPort(t)
	s := newSender(t, relaysOf(t, "smtp://"+dead+"?tls=none,"+sink.URL()), mailer.Options{})
	for range 3 {
		if err := s.Send(context.Background(), &mailer.Message{From: "news@example.org", To: "ana@example.org", Subject: "s", Text: "t"}); err != nil {
			t.Fatalf("Send: %v", err)
		}
	}
	sink.WaitFor(t, 3, wait)
}

func TestAllRelaysDownIsTemporary(t *testing.T) {
	s := newSender(t, relaysOf(t, "smtp://"+closedPort(t)+",smtp://"+closedPort(t)), mailer.Options{})
	err := s.Send(context.Background(), &mailer.Message{From: "news@example.org", To: "ana@example.org", Subject: "s", Text: "t"})
	if err == nil || !mailer.IsTemporary(err) {
		t.Fatalf("err = %v, want a temporary error", err)
	}
}

func TestRateLimitWaitRespectsContext(t *testing.T) {
	tests := []struct {
		name string
		url  string
		opts mailer.Options
	}{
		{"global", "", mailer.Options{GlobalRate: 0.001}},
		{"per relay", "&rate=0.001", mailer.Options{}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			sink := smtptest.New(t)
			s := newSender(t, relaysOf(t, sink.URL()+tc.url), tc.opts)
			msg := &mailer.Message{From: "news@example.org", To: "ana@example.org", Subject: "s", Text: "t"}
			if err := s.Send(context.Background(), msg); err != nil {
				t.Fatalf("first Send (within burst): %v", err)
			}
			// The next token is 1000 s away: a cancelled wait must return at once.
			ctx, cancel := context.WithCancel(context.Background())
			done := make(chan error, 1)
			go func() { done <- s.Send(ctx, msg) }()
			cancel()
			select {
			case err := <-done:
				if !errors.Is(err, context.Canceled) && !errors.Is(err, context.DeadlineExceeded) {
					t.Errorf("err = %v, want context.Canceled", err)
				}
				if !mailer.IsTemporary(err) {
					t.Errorf("err = %v, want temporary", err)
				}
			case <-time.After(wait):
				t.Fatal("Send kept waiting after ctx was cancelled")
			}
			// A deadline shorter than the wait fails fast too.
			ctx, cancel = context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			if err := s.Send(ctx, msg); !errors.Is(err, context.DeadlineExceeded) {
				t.Errorf("err = %v, want context.DeadlineExceeded", err)
			}
			if got := sink.Received(); got != 1 {
				t.Errorf("sink received %d, want 1", got)
			}
		})
	}
}

func TestSendAfterClose(t *testing.T) {
	sink := smtptest.New(t)
	s := newSender(t, relaysOf(t, sink.URL()), mailer.Options{})
	msg := &mailer.Message{From: "news@example.org", To: "ana@example.org", Subject: "s", Text: "t"}
	if err := s.Send(context.Background(), msg); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if err := s.Send(context.Background(), msg); !errors.Is(err, mailer.ErrClosed) || !mailer.IsTemporary(err) {
		t.Errorf("Send after Close = %v, want temporary ErrClosed", err)
	}
}

func TestAuthAndPasswordsNeverLogged(t *testing.T) {
	sink := smtptest.New(t)
	var logged strings.Builder
	// The first relay is down, so its failure is logged; both carry a password.
	url := "smtp://ana:hunter2@" + closedPort(t) + "," +
		"smtp://ana%40example.org:hunter2@" + sink.Addr() + "?tls=none&auth=plain"
	s := newSender(t, relaysOf(t, url), mailer.Options{Logger: slog.New(slog.NewTextHandler(&logged, nil))})
	if err := s.Send(context.Background(), &mailer.Message{From: "news@example.org", To: "bob@example.org", Subject: "s", Text: "t"}); err != nil {
		t.Fatal(err)
	}
	m := sink.WaitFor(t, 1, wait)[0]
	if m.AuthUser != "ana@example.org" {
		t.Errorf("AuthUser = %q, want ana@example.org", m.AuthUser)
	}
	if !strings.Contains(logged.String(), "relay unreachable") || !strings.Contains(logged.String(), "ana:xxxxx@") {
		t.Errorf("log lacks the failover, with the relay redacted: %s", logged.String())
	}
	if strings.Contains(logged.String(), "hunter2") {
		t.Errorf("password logged: %s", logged.String())
	}
}

func TestAuthFailureFailsOver(t *testing.T) {
	// The sink offers only PLAIN, so a relay configured for CRAM-MD5 cannot log in: the
	// message goes through the next relay.
	sink := smtptest.New(t)
	s := newSender(t, relaysOf(t, "smtp://u:p@"+sink.Addr()+"?tls=none&auth=cram-md5,"+sink.URL()), mailer.Options{})
	if err := s.Send(context.Background(), &mailer.Message{From: "news@example.org", To: "bob@example.org", Subject: "s", Text: "t"}); err != nil {
		t.Fatalf("Send: %v", err)
	}
	if m := sink.WaitFor(t, 1, wait)[0]; m.AuthUser != "" {
		t.Errorf("AuthUser = %q, want the second, unauthenticated relay to have sent it", m.AuthUser)
	}
}

func pemKey(tb testing.TB, key any, pkcs1 bool) []byte {
	tb.Helper()
	if pkcs1 {
		return pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(key.(*rsa.PrivateKey))})
	}
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		tb.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})
}

func TestDKIMRoundTrip(t *testing.T) {
	rsaKey, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	_, edKey, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		pem  []byte
	}{
		{"rsa pkcs1", pemKey(t, rsaKey, true)},
		{"rsa pkcs8", pemKey(t, rsaKey, false)},
		{"ed25519 pkcs8", pemKey(t, edKey, false)},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			signer, err := mailer.NewDKIMSigner("example.org", "s2026", tc.pem)
			if err != nil {
				t.Fatalf("NewDKIMSigner: %v", err)
			}
			if signer.DNSName() != "s2026._domainkey.example.org" {
				t.Errorf("DNSName() = %q", signer.DNSName())
			}
			sink := smtptest.New(t)
			s := newSender(t, relaysOf(t, sink.URL()), mailer.Options{DKIM: []*mailer.DKIMSigner{signer}})
			err = s.Send(context.Background(), &mailer.Message{
				From: "Équipe <news@example.org>", To: "ana@example.net", Subject: "Signé ✓",
				Text: "text\n.dot line\n", HTML: "<p>html</p>",
				Headers: map[string]string{"List-Unsubscribe": "<https://example.org/u/t>", "List-Unsubscribe-Post": "List-Unsubscribe=One-Click"},
			})
			if err != nil {
				t.Fatal(err)
			}
			raw := sink.WaitFor(t, 1, wait)[0].Raw
			lookups := 0
			vs, err := dkim.VerifyWithOptions(strings.NewReader(string(raw)), &dkim.VerifyOptions{
				LookupTXT: func(domain string) ([]string, error) {
					lookups++
					if domain != signer.DNSName() {
						return nil, fmt.Errorf("unexpected lookup of %q", domain)
					}
					return []string{signer.DNSRecord()}, nil
				},
			})
			if err != nil {
				t.Fatalf("Verify: %v", err)
			}
			if len(vs) != 1 || lookups != 1 {
				t.Fatalf("got %d verifications after %d lookups, want 1 and 1", len(vs), lookups)
			}
			if vs[0].Err != nil || vs[0].Domain != "example.org" {
				t.Fatalf("verification = %+v, want valid for example.org", vs[0])
			}
			signed := strings.ToLower(strings.Join(vs[0].HeaderKeys, ":"))
			for _, h := range []string{"from", "subject", "list-unsubscribe", "list-unsubscribe-post", "message-id"} {
				if !strings.Contains(signed, h) {
					t.Errorf("header %s not signed (h=%s)", h, signed)
				}
			}
			// A tampered copy must fail.
			tampered := strings.Replace(string(raw), "html", "HTML", 1)
			vs, _ = dkim.VerifyWithOptions(strings.NewReader(tampered), &dkim.VerifyOptions{
				LookupTXT: func(string) ([]string, error) { return []string{signer.DNSRecord()}, nil },
			})
			if len(vs) != 1 || vs[0].Err == nil {
				t.Error("tampered message verified")
			}
		})
	}
}

func TestNewDKIMSignerRefusesBadKeys(t *testing.T) {
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name, domain, selector string
		pem                    []byte
	}{
		{"no pem", "example.org", "s", []byte("not a key")},
		{"wrong block", "example.org", "s", pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: []byte{1}})},
		{"garbage der", "example.org", "s", pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: []byte{1, 2}})},
		{"empty domain", "", "s", pemKey(t, key, true)},
		{"bad selector", "example.org", "a;b", pemKey(t, key, true)},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := mailer.NewDKIMSigner(tc.domain, tc.selector, tc.pem); err == nil {
				t.Error("NewDKIMSigner succeeded, want an error")
			}
		})
	}
}

func TestIdleConnectionsExpire(t *testing.T) {
	sink := smtptest.New(t)
	var mu sync.Mutex
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	s := newSender(t, relaysOf(t, sink.URL()+"&max_conns=1"), mailer.Options{Now: clock, IdleTimeout: time.Minute})
	msg := &mailer.Message{From: "news@example.org", To: "ana@example.org", Subject: "s", Text: "t"}
	for _, advance := range []time.Duration{0, 59 * time.Second, 61 * time.Second} {
		mu.Lock()
		now = now.Add(advance)
		mu.Unlock()
		if err := s.Send(context.Background(), msg); err != nil {
			t.Fatal(err)
		}
	}
	if got := sink.Connections(); got != 2 {
		t.Errorf("sink accepted %d connections, want 2 (reuse after 59 s idle, redial after 61 s)", got)
	}
	if m := sink.WaitFor(t, 3, wait)[0]; m.Header.Get("Date") != "Thu, 01 Jan 2026 00:02:00 +0000" {
		t.Errorf("Date = %q, want the injected clock's", m.Header.Get("Date"))
	}
}

// A relay that gives up on a recipient with 421, quoting the address, is failed over
// from; the log of that says which relay, not which recipient.
func TestFailoverLogsNoAddress(t *testing.T) {
	closing, sink := smtptest.New(t), smtptest.New(t)
	closing.FailRcpt(func(rcpt string) *smtp.SMTPError {
		return &smtp.SMTPError{Code: 421, EnhancedCode: smtp.EnhancedCode{4, 7, 0}, Message: "<" + rcpt + ">: closing, too busy"}
	})
	var logged strings.Builder
	s := newSender(t, relaysOf(t, closing.URL()+","+sink.URL()), mailer.Options{Logger: slog.New(slog.NewTextHandler(&logged, nil))})
	if err := s.Send(context.Background(), &mailer.Message{From: "news@example.org", To: "zoe.private@example.org", Subject: "s", Text: "t"}); err != nil {
		t.Fatal(err)
	}
	sink.WaitFor(t, 1, wait)
	if !strings.Contains(logged.String(), "relay unreachable") || !strings.Contains(logged.String(), "closing, too busy") {
		t.Errorf("log lacks the failover and the relay's reply: %s", logged.String())
	}
	if strings.Contains(logged.String(), "zoe.private") {
		t.Errorf("recipient logged: %s", logged.String())
	}
}
