package main

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/emersion/go-msgauth/dkim"
	"github.com/miekg/dns"

	"consentmail/mailer"
	"consentmail/mailer/deliverability/dnstest"
	"consentmail/mailer/smtptest"
)

// dkimKeyFile writes a fresh Ed25519 key for domain and returns its path and signer.
func dkimKeyFile(tb testing.TB, domain, selector string) (string, *mailer.DKIMSigner) {
	tb.Helper()
	_, key, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		tb.Fatal(err)
	}
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		tb.Fatal(err)
	}
	pemBytes := pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})
	path := filepath.Join(tb.TempDir(), domain+".pem")
	if err := os.WriteFile(path, pemBytes, 0o600); err != nil {
		tb.Fatal(err)
	}
	signer, err := mailer.NewDKIMSigner(domain, selector, pemBytes)
	if err != nil {
		tb.Fatal(err)
	}
	return path, signer
}

// goodDNS publishes everything good.test needs for the relay mail.good.test.
func goodDNS(tb testing.TB, signer *mailer.DKIMSigner) *dnstest.Server {
	tb.Helper()
	srv := dnstest.New(tb)
	srv.Add(tb,
		`mail.good.test. 300 IN A 192.0.2.10`,
		`10.2.0.192.in-addr.arpa. 300 IN PTR mail.good.test.`,
		`good.test. 300 IN TXT "v=spf1 ip4:192.0.2.10 -all"`,
		`_dmarc.good.test. 300 IN TXT "v=DMARC1; p=reject"`,
	)
	srv.AddTXT(signer.DNSName(), signer.DNSRecord())
	return srv
}

// TestDoctorCommand: `consentmail doctor` asks the configured DNS server, prints every
// finding, exits 0 when nothing fails and 1 (naming what to fix) when something does.
func TestDoctorCommand(t *testing.T) {
	keyFile, signer := dkimKeyFile(t, "good.test", "s1")
	srv := goodDNS(t, signer)
	env := map[string]string{
		"CONSENTMAIL_DATA_DIR":      t.TempDir(),
		"CONSENTMAIL_FROM":          "News <news@good.test>",
		"CONSENTMAIL_SMTP_URL":      "smtp://mail.good.test:25?tls=none",
		"CONSENTMAIL_DKIM_SELECTOR": "s1",
		"CONSENTMAIL_DKIM_KEY_FILE": keyFile,
		"CONSENTMAIL_DNS_SERVER":    srv.Addr(),
	}
	doctor := func() (string, error) {
		var out, errOut bytes.Buffer
		err := run(context.Background(), []string{"consentmail", "doctor"}, environ(env), &out, &errOut)
		return out.String() + errOut.String(), err
	}
	out, err := doctor()
	if err != nil {
		t.Fatalf("doctor on a good domain: %v\n%s", err, out)
	}
	for _, want := range []string{"OK    spf        good.test", "OK    dkim       good.test", "OK    dmarc      good.test",
		"OK    alignment  good.test", "OK    ptr        192.0.2.10", "5 ok, 0 to improve, 0 to fix"} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}

	srv.Remove("_dmarc.good.test", dns.TypeTXT)
	out, err = doctor()
	var ee exitError
	if !errors.As(err, &ee) || ee.code != 1 {
		t.Fatalf("doctor without DMARC: %v, want exit status 1\n%s", err, out)
	}
	if !strings.Contains(out, "FAIL  dmarc      good.test") || !strings.Contains(out, `fix: publish a TXT record at _dmarc.good.test: "v=DMARC1; p=none`) {
		t.Errorf("output does not name the missing DMARC record and its fix:\n%s", out)
	}

	env["CONSENTMAIL_DNS_SERVER"] = "no-port"
	if _, err := doctor(); err == nil || !strings.Contains(err.Error(), "CONSENTMAIL_DNS_SERVER") {
		t.Errorf("doctor with a bad DNS server: %v, want an error naming CONSENTMAIL_DNS_SERVER", err)
	}
}

// TestCampaignDKIMAndDeliverabilityAPI runs the service with a DKIM key: every
// campaign message verifies with go-msgauth and its signature covers (and over-signs)
// List-Unsubscribe and List-Unsubscribe-Post; GET /api/v1/deliverability reports the
// same checks as the command, to administrators only.
func TestCampaignDKIMAndDeliverabilityAPI(t *testing.T) {
	keyFile, signer := dkimKeyFile(t, "good.test", "s1")
	dnsSrv := goodDNS(t, signer)
	sink := smtptest.New(t)
	dir := t.TempDir()
	audience := seedAudience(t, dir, "weekly", "dkim", 3)
	env := serveEnv(dir, sink.URL())
	env["CONSENTMAIL_FROM"] = "News <news@good.test>"
	env["CONSENTMAIL_DKIM_SELECTOR"] = "s1"
	env["CONSENTMAIL_DKIM_KEY_FILE"] = keyFile
	env["CONSENTMAIL_DNS_SERVER"] = dnsSrv.Addr()
	srv := startServer(t, env, "serve")
	c := newClient(t, srv.BaseURL)

	id := c.startCampaign("weekly", "Signed news")
	wantFinished(t, c, c.waitFinished(id), audience, sink)
	lookup := func(name string) ([]string, error) {
		if name != signer.DNSName() {
			return nil, fmt.Errorf("no TXT at %s", name)
		}
		return []string{signer.DNSRecord()}, nil
	}
	n := 0
	for _, m := range sink.Messages() {
		if m.Subject != "Signed news" {
			continue
		}
		n++
		vs, err := dkim.VerifyWithOptions(bytes.NewReader(m.Raw), &dkim.VerifyOptions{LookupTXT: lookup})
		if err != nil || len(vs) != 1 || vs[0].Err != nil || vs[0].Domain != "good.test" {
			t.Fatalf("message to %v: verify = %v, %+v; want one valid signature by good.test", m.To, err, vs)
		}
		count := map[string]int{}
		for _, k := range vs[0].HeaderKeys {
			count[strings.ToLower(k)]++
		}
		for _, h := range []string{"from", "list-unsubscribe", "list-unsubscribe-post", "list-id"} {
			if count[h] != 2 {
				t.Errorf("h= names %s %d times, want 2 (signed and over-signed): %v", h, count[h], vs[0].HeaderKeys)
			}
		}
	}
	if n != len(audience) {
		t.Fatalf("%d campaign messages, want %d", n, len(audience))
	}

	var rep struct {
		OK       bool `json:"ok"`
		Findings []struct {
			Check, Subject, Status, Message, Fix string
		} `json:"findings"`
	}
	if st := c.admin("GET", "/api/v1/deliverability", "", &rep); st != http.StatusOK {
		t.Fatalf("GET /api/v1/deliverability: %d, want 200", st)
	}
	got := map[string]string{}
	for _, f := range rep.Findings {
		got[f.Check+" "+f.Subject] = f.Status
	}
	// The sink is on loopback: its PTR cannot be judged, the rest is good.
	for k, want := range map[string]string{"spf good.test": "ok", "dkim good.test": "ok", "dmarc good.test": "ok",
		"alignment good.test": "ok", "ptr 127.0.0.1": "warn"} {
		if got[k] != want {
			t.Errorf("%s: %q, want %q (report %+v)", k, got[k], want, rep)
		}
	}
	if !rep.OK {
		t.Errorf("ok = false, want true: %+v", rep)
	}
	if st, _ := c.do("GET", "/api/v1/deliverability", "", ""); st != http.StatusUnauthorized {
		t.Errorf("without a key: %d, want 401", st)
	}
	var key struct {
		Key string `json:"key"`
	}
	if st := c.admin("POST", "/api/v1/apikeys", `{"role":"marketer","name":"m"}`, &key); st != http.StatusCreated {
		t.Fatalf("create marketer key: %d", st)
	}
	if st, _ := c.do("GET", "/api/v1/deliverability", "", "", "Authorization", "Bearer "+key.Key); st != http.StatusForbidden {
		t.Errorf("as a marketer: %d, want 403", st)
	}
}
