package inbound_test

import (
	"testing"

	"github.com/emersion/go-smtp"

	"consentmail/mailer/inbound"
	"consentmail/mailer/smtptest"
)

// With a certificate the server offers STARTTLS, and a report sent over the
// encrypted channel is handled as any other; without one it offers none.
func TestServerOffersSTARTTLS(t *testing.T) {
	serverTLS, clientTLS := smtptest.SelfSigned(t)
	rec := &recorder{}
	addr := startInbound(t, inbound.Config{TLS: serverTLS}, rec)

	probe, err := smtp.Dial(addr)
	if err != nil {
		t.Fatal(err)
	}
	if err := probe.Hello("test.example"); err != nil {
		t.Fatal(err)
	}
	if ok, _ := probe.Extension("STARTTLS"); !ok {
		t.Fatal("STARTTLS not offered with a certificate")
	}
	probe.Close()
	c, err := smtp.DialStartTLS(addr, clientTLS)
	if err != nil {
		t.Fatalf("STARTTLS: %v", err)
	}
	defer c.Close()
	// DialStartTLS failed unless the handshake verified the test's certificate.
	if err := c.Mail("", nil); err != nil {
		t.Fatal(err)
	}
	if err := c.Rcpt("unsubscribe+good1@bounces.example.org", nil); err != nil {
		t.Fatal(err)
	}
	w, err := c.Data()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.Write([]byte("Subject: unsubscribe\r\n\r\nplease\r\n")); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatalf("end of data over TLS: %v", err)
	}
	rec.mu.Lock()
	got := len(rec.unsubs)
	rec.mu.Unlock()
	if got != 1 {
		t.Errorf("%d unsubscribes handled over TLS, want 1", got)
	}

	plain := startInbound(t, inbound.Config{}, &recorder{})
	p, err := smtp.Dial(plain)
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	if err := p.Hello("test.example"); err != nil {
		t.Fatal(err)
	}
	if ok, _ := p.Extension("STARTTLS"); ok {
		t.Error("STARTTLS offered without a certificate")
	}
}
