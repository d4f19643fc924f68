package deliverability_test

import (
	"context"
	"html"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/gofiber/fiber/v2"
	"github.com/miekg/dns"

	"consentmail/mailer"
	"consentmail/mailer/deliverability"
	"consentmail/mailer/deliverability/dnstest"
	"consentmail/preferences/webauth"
	"consentmail/preferences/webauth/webauthtest"
	"consentmail/templates"
)

// sendingEnv is the page over a DNS server on loopback that serves good.test.
type sendingEnv struct {
	app    *fiber.App
	page   *deliverability.SendingPage
	dns    *dnstest.Server
	signer *mailer.DKIMSigner
}

func newSendingEnv(tb testing.TB) *sendingEnv {
	tb.Helper()
	srv := dnstest.New(tb)
	signer := edSigner(tb, "good.test", "s1")
	goodZone(tb, srv, signer)
	relays, err := mailer.ParseRelays("smtp://mailer:s3cret-pa55word@mail.good.test:587?tls=starttls&max_conns=4&rate=20")
	if err != nil {
		tb.Fatal(err)
	}
	settings := deliverability.SendingSettings{From: "News <news@good.test>", Relays: relays, SendRate: 50,
		DKIM: []*mailer.DKIMSigner{signer}, Inbound: deliverability.Inbound{Addr: "0.0.0.0:25", Domain: "bounces.good.test"},
		Webhooks: []string{"postmark"}, OptinTTL: 7 * 24 * time.Hour, OptinGrace: 7 * 24 * time.Hour,
		Lists: func(context.Context) ([]deliverability.ListRetention, error) {
			return []deliverability.ListRetention{{ID: "news", Name: "Newsletter", Days: 1095}}, nil
		},
		DNSServer: srv.Addr()}
	check := deliverability.Config{From: settings.From, DKIM: settings.DKIM, Relays: []string{"mail.good.test"}}
	r, err := templates.New(templates.Site{Company: "Acme"})
	if err != nil {
		tb.Fatal(err)
	}
	now := func() time.Time { return time.Date(2026, 12, 6, 10, 0, 0, 0, time.UTC) }
	page, err := deliverability.NewSendingPage(settings, check, r, templates.Site{Company: "Acme"}, now)
	if err != nil {
		tb.Fatal(err)
	}
	app := fiber.New(fiber.Config{Immutable: true})
	page.Routes(app.Group("/admin", func(c *fiber.Ctx) error {
		webauth.With(c, webauth.Session{UserID: "u1", Email: "m@acme.test", Role: c.Get("X-Test-Role"), CSRF: "t",
			Lang: c.Query("lang", "en")})
		return c.Next()
	}), webauthtest.Require)
	return &sendingEnv{app: app, page: page, dns: srv, signer: signer}
}

func (e *sendingEnv) do(tb testing.TB, method, path, role string) (int, http.Header, string) {
	tb.Helper()
	req := httptest.NewRequest(method, path, nil)
	req.Header.Set("X-Test-Role", role)
	res, err := e.app.Test(req, -1)
	if err != nil {
		tb.Fatal(err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	return res.StatusCode, res.Header, string(b)
}

func TestSendingPageShowsTheConfigurationWithoutSecrets(t *testing.T) {
	e := newSendingEnv(t)
	status, _, body := e.do(t, "GET", "/admin/settings/sending", "admin")
	if status != 200 {
		t.Fatalf("status %d\n%s", status, body)
	}
	for _, want := range []string{"<code>mail.good.test</code>", "<td class=\"num\">587</td>", "STARTTLS", "<td class=\"num\">4</td>",
		"20 messages per second", "50 messages per second", "as mailer", "s1._domainkey.good.test",
		"0.0.0.0:25", "bounces.good.test", "Postmark", "/webhooks/postmark", "7 days", "expire after 14 days", "Newsletter",
		"1095", "No check has run since the server started."} {
		if !strings.Contains(body, want) {
			t.Errorf("page lacks %q", want)
		}
	}
	if !strings.Contains(html.UnescapeString(body), e.signer.DNSRecord()) {
		t.Errorf("page lacks the DKIM record %q", e.signer.DNSRecord())
	}
	if strings.Contains(body, "s3cret") {
		t.Error("the page shows a relay's password")
	}
	if _, at := e.page.LastReport(); !at.IsZero() {
		t.Error("a report before any run")
	}
}

func TestSendingPageIsForAdmins(t *testing.T) {
	e := newSendingEnv(t)
	for _, role := range []string{"marketer", "dpo", "viewer"} {
		if status, _, _ := e.do(t, "GET", "/admin/settings/sending", role); status != 403 {
			t.Errorf("%s opens the page: %d", role, status)
		}
		if status, _, _ := e.do(t, "POST", "/admin/settings/sending/check", role); status != 403 {
			t.Errorf("%s runs the check: %d", role, status)
		}
	}
	if _, at := e.page.LastReport(); !at.IsZero() {
		t.Error("a refused request ran the check")
	}
}

func TestSendingPageRunsTheChecks(t *testing.T) {
	e := newSendingEnv(t)
	e.dns.Remove("_dmarc.good.test", dns.TypeTXT) // one failure to fix
	status, h, _ := e.do(t, "POST", "/admin/settings/sending/check", "admin")
	if status != fiber.StatusSeeOther || h.Get("Location") != "/admin/settings/sending#check" {
		t.Fatalf("POST check: %d %q", status, h.Get("Location"))
	}
	rep, at := e.page.LastReport()
	if at.IsZero() || len(rep.Findings) == 0 {
		t.Fatalf("no report kept: %+v", rep)
	}
	st, _, body := e.do(t, "GET", "/admin/settings/sending", "admin")
	if st != 200 {
		t.Fatalf("GET after the check: %d\n%s", st, body)
	}
	for _, want := range []string{"4 ok", "1 to fix", "no DMARC record", `<span class="badge bad">to fix</span>`,
		`<span class="badge ok">ok</span>`, "What to do:", "_dmarc.good.test"} {
		if !strings.Contains(body, want) {
			t.Errorf("page after the check lacks %q", want)
		}
	}
	_, _, fr := e.do(t, "GET", "/admin/settings/sending?lang=fr", "admin")
	for _, want := range []string{"Réglages d’envoi", "1 à corriger", "Que faire\u202f:"} {
		if !strings.Contains(fr, want) {
			t.Errorf("French page lacks %q", want)
		}
	}
}
