package inbound_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"consentmail/mailer/inbound"
	"consentmail/mailer/smtptest"
)

// recorder is a Handler that accepts tokens starting with "good" and records calls.
type recorder struct {
	mu          sync.Mutex
	bounces     []inbound.Bounce
	complaints  []string
	unsubs      []string
	quarantined []inbound.Unmatched
}

func (r *recorder) Check(_ inbound.Kind, token string) error {
	if !strings.HasPrefix(token, "good") {
		return errors.New("forged")
	}
	return nil
}

func (r *recorder) Bounce(_ context.Context, token string, b inbound.Bounce) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.bounces = append(r.bounces, b)
	return nil
}

func (r *recorder) Complaint(_ context.Context, token string, f inbound.Feedback) error {
	if r.Check(inbound.KindBounce, token) != nil {
		return fmt.Errorf("token %q: %w", token, inbound.ErrUnmatched)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.complaints = append(r.complaints, token)
	return nil
}

func (r *recorder) Unsubscribe(_ context.Context, token string) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.unsubs = append(r.unsubs, token)
	return nil
}

func (r *recorder) Quarantine(_ context.Context, m inbound.Unmatched) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.quarantined = append(r.quarantined, m)
	return nil
}

func startInbound(tb testing.TB, cfg inbound.Config, h inbound.Handler) string {
	tb.Helper()
	cfg.Domain = "bounces.example.org"
	s := inbound.NewServer(cfg, h)
	addr, err := s.Listen("127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Serve(ctx) }()
	tb.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			tb.Errorf("Serve: %v", err)
		}
	})
	return addr.String()
}

func TestServerRecipients(t *testing.T) {
	rec := &recorder{}
	addr := startInbound(t, inbound.Config{}, rec)
	report := fixture(t, "postfix_hard.eml")
	for _, tc := range []struct {
		rcpt string
		code int
	}{
		{"bounce+good1@bounces.example.org", 0},
		{"BOUNCE+good2@Bounces.Example.org", 0},
		{"unsubscribe+good3@bounces.example.org", 0},
		{"fbl@bounces.example.org", 0},
		{"bounce+forged@bounces.example.org", 550},
		{"unsubscribe+forged@bounces.example.org", 550},
		{"bounce+good1@elsewhere.example.net", 550},
		{"postmaster@bounces.example.org", 550},
		{"bounce+@bounces.example.org", 550},
		{"someone@example.org", 550},
	} {
		t.Run(tc.rcpt, func(t *testing.T) {
			err := smtptest.Deliver(addr, tc.rcpt, report)
			if got := smtptest.Code(err); got != tc.code || (tc.code == 0 && err != nil) {
				t.Errorf("got %v (code %d), want code %d", err, got, tc.code)
			}
		})
	}
	rec.mu.Lock()
	defer rec.mu.Unlock()
	// Two at bounce+, one at fbl@ naming its message by the returned header.
	if len(rec.bounces) != 3 || !rec.bounces[0].Permanent || rec.bounces[0].Status != "5.1.1" {
		t.Errorf("bounces %+v, want three permanent 5.1.1", rec.bounces)
	}
	if len(rec.unsubs) != 1 || rec.unsubs[0] != "good3" {
		t.Errorf("unsubscribes %v, want [good3]", rec.unsubs)
	}
	if len(rec.quarantined) != 0 {
		t.Errorf("quarantined %d, want 0", len(rec.quarantined))
	}
}

func TestServerQuarantinesWhatItCannotRead(t *testing.T) {
	rec := &recorder{}
	addr := startInbound(t, inbound.Config{}, rec)
	for _, tc := range []struct{ rcpt, file string }{
		{"bounce+good1@bounces.example.org", "out_of_office.eml"},
		{"fbl@bounces.example.org", "garbled_report.eml"},
		{"fbl@bounces.example.org", "arf_yahoo.eml"}, // @@REF@@ is unmatched
	} {
		if err := smtptest.Deliver(addr, tc.rcpt, fixture(t, tc.file)); err != nil {
			t.Fatalf("%s: %v", tc.file, err)
		}
	}
	rec.mu.Lock()
	defer rec.mu.Unlock()
	if len(rec.quarantined) != 3 {
		t.Fatalf("quarantined %d, want 3", len(rec.quarantined))
	}
	for _, m := range rec.quarantined {
		if m.Reason == "" || len(m.Raw) == 0 || len(m.To) != 1 {
			t.Errorf("quarantined %+v, want a reason, the raw message and the recipient", m.Reason)
		}
	}
}

func TestServerRefusesOversizedMessages(t *testing.T) {
	rec := &recorder{}
	addr := startInbound(t, inbound.Config{MaxMessageBytes: 64 << 10}, rec)
	big := append(fixture(t, "postfix_hard.eml"), bytes.Repeat([]byte("x123456789\r\n"), 10<<10)...)
	err := smtptest.Deliver(addr, "bounce+good1@bounces.example.org", big)
	if got := smtptest.Code(err); got != 552 {
		t.Fatalf("got %v, want 552", err)
	}
	if len(rec.bounces) != 0 {
		t.Fatal("an oversized message was handled")
	}
}

func TestServerLimitsConnectionsPerIP(t *testing.T) {
	addr := startInbound(t, inbound.Config{ConnsPerMinute: 3}, &recorder{})
	refused := 0
	for range 5 {
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err != nil {
			t.Fatal(err)
		}
		c.SetReadDeadline(time.Now().Add(5 * time.Second))
		buf := make([]byte, 64)
		n, _ := c.Read(buf)
		if strings.HasPrefix(string(buf[:n]), "421") {
			refused++
		}
		c.Close()
	}
	if refused != 2 {
		t.Fatalf("refused %d of 5 connections, want 2 with 3 a minute", refused)
	}
}
