package mailer_test

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"testing"

	"github.com/emersion/go-msgauth/dkim"

	"consentmail/mailer"
	"consentmail/mailer/smtptest"
)

// newEdSigner returns a fresh Ed25519 signer for domain.
func newEdSigner(tb testing.TB, domain, selector string) *mailer.DKIMSigner {
	tb.Helper()
	_, key, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		tb.Fatal(err)
	}
	s, err := mailer.NewDKIMSigner(domain, selector, pemKey(tb, key, false))
	if err != nil {
		tb.Fatalf("NewDKIMSigner: %v", err)
	}
	return s
}

// verify checks raw's DKIM signatures with go-msgauth, the public keys coming from
// signers instead of DNS.
func verify(tb testing.TB, raw []byte, signers ...*mailer.DKIMSigner) []*dkim.Verification {
	tb.Helper()
	vs, err := dkim.VerifyWithOptions(bytes.NewReader(raw), &dkim.VerifyOptions{
		LookupTXT: func(name string) ([]string, error) {
			for _, s := range signers {
				if name == s.DNSName() {
					return []string{s.DNSRecord()}, nil
				}
			}
			return nil, fmt.Errorf("no TXT record at %s", name)
		},
	})
	if err != nil {
		tb.Fatalf("dkim.Verify: %v", err)
	}
	return vs
}

// campaignMessage is a campaign message as queue/campaigns' worker builds it.
func campaignMessage(to string) *mailer.Message {
	return &mailer.Message{
		From: "Newsletter <news@example.org>", To: to, Subject: "March news",
		Text: "Hello\n\nUnsubscribe: https://example.org/u/tok\n", HTML: "<p>Hello</p>",
		MessageID: "<0123456789abcdef.c1@example.org>",
		Headers: map[string]string{
			"List-Unsubscribe":      "<https://example.org/u/tok>",
			"List-Unsubscribe-Post": "List-Unsubscribe=One-Click",
			"List-Id":               "News <news.example.org>",
			"Precedence":            "bulk",
		},
	}
}

// TestDKIMCampaignMessageCoversListUnsubscribe is issue 11's "done when": campaign
// messages, sent one by one and in a pipelined batch through the real Sender to an
// SMTP sink, verify with go-msgauth; the signature covers both List-Unsubscribe fields
// and over-signs them, so a field added later (a second From or List-Unsubscribe above
// the signed ones) makes verification fail.
func TestDKIMCampaignMessageCoversListUnsubscribe(t *testing.T) {
	signer := newEdSigner(t, "example.org", "cm2026")
	sink := smtptest.New(t)
	s := newSender(t, relaysOf(t, sink.URL()), mailer.Options{DKIM: []*mailer.DKIMSigner{signer}})
	ctx := context.Background()
	if err := s.Send(ctx, campaignMessage("one@example.net")); err != nil {
		t.Fatal(err)
	}
	batch := []*mailer.Message{campaignMessage("two@example.net"), campaignMessage("three@example.net")}
	for i, err := range sendBatch(ctx, s, batch) {
		if err != nil {
			t.Fatalf("SendBatchFunc[%d]: %v", i, err)
		}
	}
	msgs := sink.WaitFor(t, 3, wait)
	for _, m := range msgs {
		t.Run(m.To[0], func(t *testing.T) {
			raw := m.Raw
			vs := verify(t, raw, signer)
			if len(vs) != 1 || vs[0].Err != nil || vs[0].Domain != "example.org" {
				t.Fatalf("verification = %+v, want one valid signature by example.org", vs)
			}
			count := map[string]int{}
			for _, k := range vs[0].HeaderKeys {
				count[strings.ToLower(k)]++
			}
			// Present once, so named twice: signed, and over-signed against a second copy.
			for _, h := range []string{"from", "list-unsubscribe", "list-unsubscribe-post", "list-id", "subject", "message-id", "to"} {
				if count[h] != 2 {
					t.Errorf("h= names %s %d times, want 2 (h=%s)", h, count[h], strings.Join(vs[0].HeaderKeys, ":"))
				}
			}
			// Absent: named once, so it cannot be added.
			if count["reply-to"] != 1 {
				t.Errorf("h= names reply-to %d times, want 1", count["reply-to"])
			}

			added := map[string]string{
				"second From above":             "From: Bank <security@bank.example>\r\n",
				"second List-Unsubscribe above": "List-Unsubscribe: <https://evil.example/u>\r\n",
				"List-Unsubscribe-Post added":   "List-Unsubscribe-Post: List-Unsubscribe=One-Click\r\n",
				"Reply-To added":                "Reply-To: <thief@evil.example>\r\n",
			}
			for name, field := range added {
				// After the DKIM-Signature field, above everything it signed.
				i := bytes.Index(raw, []byte("\r\n")) + 2
				for raw[i] == ' ' || raw[i] == '\t' {
					i += bytes.Index(raw[i:], []byte("\r\n")) + 2
				}
				tampered := append(append(append([]byte{}, raw[:i]...), field...), raw[i:]...)
				if name == "List-Unsubscribe-Post added" {
					// The message already has one: add a second at the bottom of the header.
					end := bytes.Index(raw, []byte("\r\n\r\n")) + 2
					tampered = append(append(append([]byte{}, raw[:end]...), field...), raw[end:]...)
				}
				vs := verify(t, tampered, signer)
				if len(vs) != 1 || vs[0].Err == nil {
					t.Errorf("%s: the signature still verifies, want it broken", name)
				}
			}
		})
	}
}

// TestDKIMKeyPerFromDomain: each message is signed with the key of its From domain (a
// parent domain's key covers a subdomain); mail from a domain without a key goes out
// unsigned, logged once, and CheckFrom refuses that domain.
func TestDKIMKeyPerFromDomain(t *testing.T) {
	org := newEdSigner(t, "example.org", "a")
	com := newEdSigner(t, "example.com", "b")
	sink := smtptest.New(t)
	var logs syncBuffer
	s := newSender(t, relaysOf(t, sink.URL()), mailer.Options{DKIM: []*mailer.DKIMSigner{org, com},
		Logger: slog.New(slog.NewTextHandler(&logs, nil))})
	tests := []struct {
		from, wantDomain string
	}{
		{"news@example.org", "example.org"},
		{"Shop <deals@EXAMPLE.com>", "example.com"},
		{"letters@news.example.org", "example.org"},
		{"other@unkeyed.example", ""},
		{"again@unkeyed.example", ""},
	}
	for i, tc := range tests {
		to := fmt.Sprintf("r%d@example.net", i)
		if err := s.Send(context.Background(), &mailer.Message{From: tc.from, To: to, Subject: "s", Text: "t"}); err != nil {
			t.Fatal(err)
		}
		m := sink.WaitFor(t, i+1, wait)[0]
		vs := verify(t, m.Raw, org, com)
		switch {
		case tc.wantDomain == "" && len(vs) != 0:
			t.Errorf("From %s: %d signatures, want none", tc.from, len(vs))
		case tc.wantDomain != "" && (len(vs) != 1 || vs[0].Err != nil || vs[0].Domain != tc.wantDomain):
			t.Errorf("From %s: verifications %+v, want one valid by %s", tc.from, vs, tc.wantDomain)
		}
		err := s.CheckFrom(tc.from)
		if got, want := err != nil, tc.wantDomain == ""; got != want || (got && !errors.Is(err, mailer.ErrNoDKIMKey)) {
			t.Errorf("CheckFrom(%q) = %v, want an ErrNoDKIMKey: %v", tc.from, err, want)
		}
	}
	if n := strings.Count(logs.String(), "no DKIM key"); n != 1 {
		t.Errorf("logged %d warnings about unkeyed domains, want 1:\n%s", n, logs.String())
	}
	if got := s.DKIMDomains(); strings.Join(got, ",") != "example.com,example.org" {
		t.Errorf("DKIMDomains() = %v", got)
	}
	if _, err := mailer.NewSender(relaysOf(t, sink.URL()), mailer.Options{DKIM: []*mailer.DKIMSigner{org, newEdSigner(t, "example.org", "z")}}); err == nil {
		t.Error("NewSender accepted two keys for example.org")
	}
	unsigned := newSender(t, relaysOf(t, sink.URL()), mailer.Options{})
	if err := unsigned.CheckFrom("x@anything.example"); err != nil {
		t.Errorf("CheckFrom without any key = %v, want nil", err)
	}
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}
