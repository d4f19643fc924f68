package main

import (
	"encoding/json"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/chromedp/chromedp"

	"consentmail/mailer/smtptest"
)

// TestBrowserProofAndTruthfulPages: a French visitor sees the French consent text of
// a translated list on the hosted form, and the ledger proves that text was shown;
// a restricted person's unsubscribe page and centre say so and name the contact; an
// erased person's old unsubscribe link says the data was erased.
func TestBrowserProofAndTruthfulPages(t *testing.T) {
	sink := smtptest.New(t)
	env := serveEnv(t.TempDir(), sink.URL())
	env["CONSENTMAIL_CONTACT"] = "dpo@acme.example"
	srv := startServer(t, env, "serve")
	b := newBrowser(t) // after the server: closed before it, see newBrowser
	c := newClient(t, srv.BaseURL)
	const frText = "J’accepte de recevoir La Lettre chaque semaine par e-mail."
	list := `{"id":"lettre","name":"The Letter","purpose":"Our news, weekly.","consent_text":"I want The Letter by email.",
		"public":true,"translations":{"fr":{"name":"La Lettre","purpose":"Nos nouvelles, chaque semaine.","consent_text":"` + frText + `"}}}`
	if st := c.admin("POST", "/api/v1/lists", list, nil); st != http.StatusCreated {
		t.Fatalf("create list: %d", st)
	}
	ctx := b.tab(t)
	setAcceptLanguage(t, ctx, "fr-FR,fr")

	if st := open(t, ctx, srv.BaseURL+"/subscribe/lettre"); st != http.StatusOK {
		t.Fatalf("GET /subscribe/lettre: %d", st)
	}
	wantFrench(t, ctx, "S’abonner à La Lettre")
	if got := textOf(t, ctx, "#consent-text"); got != frText {
		t.Errorf("consent text %q, want the French %q", got, frText)
	}
	const addr = "camille@example.org"
	fillForm(t, ctx, addr, "Camille", true)
	shot(t, ctx, "proof-1-form-fr")
	if st := submit(t, ctx, `main form button[type=submit]`); st != http.StatusAccepted {
		t.Fatalf("submit: %d", st)
	}
	var ledger struct {
		Items []struct {
			Subscriber   string `json:"subscriber"`
			ConsentTexts map[string]struct {
				Locale, Text string
			} `json:"consent_texts"`
		} `json:"items"`
	}
	c.admin("GET", "/api/v1/ledger?type=signup", "", &ledger)
	if n := len(ledger.Items); n != 1 || ledger.Items[0].ConsentTexts["lettre"].Locale != "fr" ||
		ledger.Items[0].ConsentTexts["lettre"].Text != frText {
		raw, _ := json.Marshal(ledger)
		t.Fatalf("signup events %s, want one proving the French text", raw)
	}
	sub := ledger.Items[0].Subscriber
	if st, page := c.do("POST", confirmURL(t, mailTo(t, sink, addr).Text), "application/x-www-form-urlencoded", ""); st != http.StatusOK {
		t.Fatalf("confirm: %d\n%s", st, page)
	}
	c.startCampaign("lettre", "Semaine 12")
	m := mailWithSubject(t, sink, addr, "Semaine 12")
	unsubscribeURL := linkIn(t, m.Text, srv.BaseURL+"/u/")
	prefsURL := linkIn(t, m.Text, srv.BaseURL+"/p/")

	if st := c.admin("POST", "/api/v1/subscribers/"+url.PathEscape(sub)+"/restrict", "", nil); st != http.StatusOK {
		t.Fatalf("restrict: %d", st)
	}
	open(t, ctx, unsubscribeURL)
	wantFrench(t, ctx, "Se désabonner")
	if got := textOf(t, ctx, "main"); !strings.Contains(got, "limité") || !strings.Contains(got, "La Lettre") {
		t.Errorf("restricted unsubscribe page: %q", got)
	}
	if got := textOf(t, ctx, `a[href^="mailto:"]`); got != "dpo@acme.example" {
		t.Errorf("contact %q, want dpo@acme.example", got)
	}
	shot(t, ctx, "proof-2-unsubscribe-restricted-fr")
	open(t, ctx, prefsURL)
	if got := textOf(t, ctx, ".notice"); !strings.Contains(got, "limité") || !strings.Contains(got, "dpo@acme.example") {
		t.Errorf("restricted centre notice: %q", got)
	}
	shot(t, ctx, "proof-3-centre-restricted-fr")

	if st := c.admin("POST", "/api/v1/subscribers/"+url.PathEscape(sub)+"/unrestrict", "", nil); st != http.StatusOK {
		t.Fatalf("unrestrict: %d", st)
	}
	if st := c.admin("DELETE", "/api/v1/subscribers/"+url.PathEscape(sub), "", nil); st != http.StatusOK {
		t.Fatalf("erase: %d", st)
	}
	if st := open(t, ctx, unsubscribeURL); st != http.StatusGone {
		t.Errorf("old unsubscribe link after erasure: %d, want 410", st)
	}
	wantFrench(t, ctx, "Vos données ont été effacées")
	if n := value(t, ctx, "count forms", chromedp.Evaluate[int](`document.forms.length`)); n != 0 {
		t.Errorf("%d forms on the erased page, want none", n)
	}
	shot(t, ctx, "proof-4-old-link-erased-fr")
}
