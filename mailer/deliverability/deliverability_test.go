package deliverability_test

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"strings"
	"testing"

	"github.com/miekg/dns"

	"consentmail/mailer"
	"consentmail/mailer/deliverability"
	"consentmail/mailer/deliverability/dnstest"
)

func edSigner(tb testing.TB, domain, selector string) *mailer.DKIMSigner {
	tb.Helper()
	_, key, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		tb.Fatal(err)
	}
	return signerOf(tb, domain, selector, key)
}

func signerOf(tb testing.TB, domain, selector string, key any) *mailer.DKIMSigner {
	tb.Helper()
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		tb.Fatal(err)
	}
	s, err := mailer.NewDKIMSigner(domain, selector, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}))
	if err != nil {
		tb.Fatal(err)
	}
	return s
}

// goodZone publishes everything good.test needs: SPF naming the relay, the DKIM key,
// DMARC with p=reject, forward-confirmed reverse DNS of the relay.
func goodZone(tb testing.TB, srv *dnstest.Server, signer *mailer.DKIMSigner) {
	tb.Helper()
	srv.Add(tb,
		`mail.good.test. 300 IN A 192.0.2.10`,
		`10.2.0.192.in-addr.arpa. 300 IN PTR mail.good.test.`,
		`good.test. 300 IN TXT "v=spf1 ip4:192.0.2.10 -all"`,
		`good.test. 300 IN MX 10 mail.good.test.`,
		`_dmarc.good.test. 300 IN TXT "v=DMARC1; p=reject; rua=mailto:dmarc@good.test"`,
	)
	srv.AddTXT(signer.DNSName(), signer.DNSRecord())
}

func TestChecks(t *testing.T) {
	signer := edSigner(t, "good.test", "s1")
	rsaKey, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	rsaSigner := signerOf(t, "good.test", "s1", rsaKey)
	base := deliverability.Config{From: "News <news@good.test>", DKIM: []*mailer.DKIMSigner{signer}, Relays: []string{"mail.good.test"}}
	type want map[string]deliverability.Status // "check subject" → status
	allOK := want{"spf good.test": "ok", "dkim good.test": "ok", "dmarc good.test": "ok", "alignment good.test": "ok", "ptr 192.0.2.10": "ok"}
	tests := []struct {
		name   string
		change func(srv *dnstest.Server, cfg *deliverability.Config)
		want   want
	}{
		{"all good", nil, allOK},
		{"rsa key in several TXT strings", func(srv *dnstest.Server, cfg *deliverability.Config) {
			srv.Remove(signer.DNSName(), dns.TypeTXT)
			srv.AddTXT(rsaSigner.DNSName(), rsaSigner.DNSRecord())
			cfg.DKIM = []*mailer.DKIMSigner{rsaSigner}
		}, allOK},
		{"spf through include and a/24", func(srv *dnstest.Server, cfg *deliverability.Config) {
			srv.Remove("good.test", dns.TypeTXT)
			srv.Add(t, `good.test. 300 IN TXT "v=spf1 include:_spf.provider.test ~all"`,
				`_spf.provider.test. 300 IN TXT "v=spf1 a:out.provider.test/24 -all"`,
				`out.provider.test. 300 IN A 192.0.2.1`)
		}, allOK},
		{"missing spf", func(srv *dnstest.Server, cfg *deliverability.Config) {
			srv.Remove("good.test", dns.TypeTXT)
		}, want{"spf good.test": "fail", "dkim good.test": "ok", "alignment good.test": "ok"}},
		{"spf +all", func(srv *dnstest.Server, cfg *deliverability.Config) {
			srv.Remove("good.test", dns.TypeTXT)
			srv.Add(t, `good.test. 300 IN TXT "v=spf1 +all"`)
		}, want{"spf good.test": "fail"}},
		{"two spf records", func(srv *dnstest.Server, cfg *deliverability.Config) {
			srv.Add(t, `good.test. 300 IN TXT "v=spf1 -all"`)
		}, want{"spf good.test": "fail"}},
		{"spf without the relay", func(srv *dnstest.Server, cfg *deliverability.Config) {
			srv.Remove("good.test", dns.TypeTXT)
			srv.Add(t, `good.test. 300 IN TXT "v=spf1 ip4:198.51.100.1 -all"`)
		}, want{"spf good.test": "warn"}},
		{"wrong dkim key", func(srv *dnstest.Server, cfg *deliverability.Config) {
			srv.Remove(signer.DNSName(), dns.TypeTXT)
			srv.AddTXT(signer.DNSName(), edSigner(t, "good.test", "s1").DNSRecord())
		}, want{"dkim good.test": "fail", "alignment good.test": "warn", "spf good.test": "ok"}},
		{"no dkim record", func(srv *dnstest.Server, cfg *deliverability.Config) {
			srv.Remove(signer.DNSName(), dns.TypeTXT)
		}, want{"dkim good.test": "fail"}},
		{"no dkim key configured", func(srv *dnstest.Server, cfg *deliverability.Config) {
			cfg.DKIM = nil
		}, want{"dkim good.test": "fail", "alignment good.test": "warn"}},
		{"no dmarc", func(srv *dnstest.Server, cfg *deliverability.Config) {
			srv.Remove("_dmarc.good.test", dns.TypeTXT)
		}, want{"dmarc good.test": "fail", "alignment good.test": "ok"}},
		{"dmarc p=none", func(srv *dnstest.Server, cfg *deliverability.Config) {
			srv.Remove("_dmarc.good.test", dns.TypeTXT)
			srv.Add(t, `_dmarc.good.test. 300 IN TXT "v=DMARC1; p=none"`)
		}, want{"dmarc good.test": "warn"}},
		{"dmarc lookup fails", func(srv *dnstest.Server, cfg *deliverability.Config) {
			srv.ServFail("_dmarc.good.test")
		}, want{"dmarc good.test": "warn"}},
		{"dmarc of the organizational domain", func(srv *dnstest.Server, cfg *deliverability.Config) {
			cfg.From = "letters@news.good.test"
			srv.Add(t, `news.good.test. 300 IN TXT "v=spf1 ip4:192.0.2.10 -all"`)
		}, want{"spf news.good.test": "ok", "dkim news.good.test": "ok", "dmarc news.good.test": "ok", "alignment news.good.test": "ok"}},
		{"from on a domain without a key, bounces elsewhere: misaligned", func(srv *dnstest.Server, cfg *deliverability.Config) {
			cfg.From = "news@other.test"
			cfg.EnvelopeDomain = "bounces.good.test"
			srv.Add(t, `bounces.good.test. 300 IN TXT "v=spf1 ip4:192.0.2.10 -all"`,
				`_dmarc.other.test. 300 IN TXT "v=DMARC1; p=quarantine"`)
		}, want{"dkim other.test": "fail", "alignment other.test": "fail", "dmarc other.test": "ok",
			"spf bounces.good.test": "ok", "dkim good.test": "ok", "alignment good.test": "ok"}},
		{"strict dkim alignment with a parent key", func(srv *dnstest.Server, cfg *deliverability.Config) {
			cfg.From = "letters@news.good.test"
			cfg.EnvelopeDomain = "bounces.elsewhere.test"
			srv.Add(t, `bounces.elsewhere.test. 300 IN TXT "v=spf1 ip4:192.0.2.10 -all"`,
				`_dmarc.news.good.test. 300 IN TXT "v=DMARC1; p=reject; adkim=s"`)
		}, want{"alignment news.good.test": "fail", "alignment good.test": "ok"}},
		{"no ptr", func(srv *dnstest.Server, cfg *deliverability.Config) {
			srv.Remove("10.2.0.192.in-addr.arpa", dns.TypePTR)
		}, want{"ptr 192.0.2.10": "fail"}},
		{"ptr not forward-confirmed", func(srv *dnstest.Server, cfg *deliverability.Config) {
			srv.Remove("10.2.0.192.in-addr.arpa", dns.TypePTR)
			srv.Add(t, `10.2.0.192.in-addr.arpa. 300 IN PTR host.isp.test.`, `host.isp.test. 300 IN A 192.0.2.99`)
		}, want{"ptr 192.0.2.10": "fail"}},
		{"relay on a private address", func(srv *dnstest.Server, cfg *deliverability.Config) {
			cfg.Relays = []string{"127.0.0.1"}
		}, want{"ptr 127.0.0.1": "warn", "spf good.test": "ok"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			srv := dnstest.New(t)
			goodZone(t, srv, signer)
			cfg := base
			if tc.change != nil {
				tc.change(srv, &cfg)
			}
			res, err := deliverability.NewResolver(srv.Addr())
			if err != nil {
				t.Fatal(err)
			}
			rep := deliverability.New(res, cfg).Run(context.Background())
			got := map[string]deliverability.Finding{}
			for _, f := range rep.Findings {
				got[f.Check+" "+f.Subject] = f
				if f.Message == "" || (f.Status != deliverability.OK) != (f.Fix != "") {
					t.Errorf("finding %+v: want a message, and a fix exactly when not ok", f)
				}
			}
			wantFail := false
			for k, st := range tc.want {
				f, ok := got[k]
				switch {
				case !ok:
					t.Errorf("no finding %q; got %+v", k, rep.Findings)
				case f.Status != st:
					t.Errorf("%s: got %s (%s), want %s", k, f.Status, f.Message, st)
				}
				wantFail = wantFail || st == deliverability.Fail
			}
			if tc.name == "all good" || strings.HasPrefix(tc.name, "rsa") || strings.HasPrefix(tc.name, "spf through") {
				for _, f := range rep.Findings {
					if f.Status != deliverability.OK {
						t.Errorf("finding %+v, want all ok", f)
					}
				}
			}
			if wantFail && !rep.Failed() {
				t.Error("Failed() = false, want true")
			}
			if t.Failed() {
				for _, f := range rep.Findings {
					t.Logf("%s %s: %s: %s (fix: %s)", f.Check, f.Subject, f.Status, f.Message, f.Fix)
				}
			}
		})
	}
}
