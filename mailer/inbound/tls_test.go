package inbound_test

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"math/big"
	"net"
	"testing"
	"time"

	"github.com/emersion/go-smtp"

	"consentmail/mailer/inbound"
)

// selfSigned returns a certificate for 127.0.0.1 made for the test, and a pool that
// trusts it.
func selfSigned(tb testing.TB) (tls.Certificate, *x509.CertPool) {
	tb.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		tb.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "bounces.example.org"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1")}, KeyUsage: x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		tb.Fatal(err)
	}
	leaf, err := x509.ParseCertificate(der)
	if err != nil {
		tb.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(leaf)
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key, Leaf: leaf}, pool
}

// With a certificate the server offers STARTTLS, and a report sent over the
// encrypted channel is handled as any other; without one it offers none.
func TestServerOffersSTARTTLS(t *testing.T) {
	cert, pool := selfSigned(t)
	rec := &recorder{}
	addr := startInbound(t, inbound.Config{TLS: &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}}, rec)

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
	c, err := smtp.DialStartTLS(addr, &tls.Config{RootCAs: pool, ServerName: "127.0.0.1"})
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
