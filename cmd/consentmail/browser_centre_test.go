package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	cdpbrowser "github.com/chromedp/cdproto/browser" // the name browser is the test's Chromium
	"github.com/chromedp/cdproto/emulation"
	"github.com/chromedp/chromedp"

	"consentmail/mailer"
	"consentmail/mailer/smtptest"
)

// TestBrowserSubscriberJourney follows one English subscriber in headless Chromium
// through every page the service shows them: the confirmation page, the unsubscribe
// page of a campaign mail, the preference centre, the data link, the export download
// and the erasure with its confirmation step.
func TestBrowserSubscriberJourney(t *testing.T) {
	sink := smtptest.New(t)
	srv := startServer(t, serveEnv(t.TempDir(), sink.URL()), "serve")
	b := newBrowser(t) // after the server: closed before it, see newBrowser
	c := newClient(t, srv.BaseURL)
	c.createList("weekly")
	const addr = "journey@example.org"
	ctx := b.tab(t)
	// English whatever the machine's locale, so the headings below are known.
	setAcceptLanguage(t, ctx, "en-GB,en")

	// Confirm in the browser.
	id := c.signupAs(fmt.Sprintf(`{"email":%q,"name":"Ana Journey","lists":["weekly"],"consent":true}`, addr))
	sub := "subscriber=" + url.QueryEscape(id)
	if st := open(t, ctx, confirmURL(t, mailTo(t, sink, addr).Text)); st != http.StatusOK {
		t.Fatalf("GET confirm: status %d, want 200", st)
	}
	if h := heading(t, ctx); h != "Confirm your subscription" {
		t.Fatalf("confirm heading %q, want %q", h, "Confirm your subscription")
	}
	shot(t, ctx, "journey-01-confirm")
	if st := submit(t, ctx, `form[method=post] button[type=submit]`); st != http.StatusOK {
		t.Errorf("POST confirm: status %d, want 200", st)
	}
	if h := heading(t, ctx); h != "You are subscribed" {
		t.Fatalf("after the click: heading %q, want %q", h, "You are subscribed")
	}
	shot(t, ctx, "journey-02-subscribed")
	if got := c.ledger(sub + "&type=confirmed"); len(got) != 1 {
		t.Fatalf("%d confirmed events, want 1", len(got))
	}

	// A campaign mail: its footer links lead to the unsubscribe page and the centre.
	c.startCampaign("weekly", "Spring news")
	m := mailWithSubject(t, sink, addr, "Spring news")
	unsubscribeURL := linkIn(t, m.Text, srv.BaseURL+"/u/")
	mailPrefsURL := linkIn(t, m.Text, srv.BaseURL+"/p/")
	if h := m.Header.Get("List-Unsubscribe"); !strings.Contains(h, "<"+srv.BaseURL+"/u/") {
		t.Errorf("List-Unsubscribe %q, want <%s/u/TOKEN>", h, srv.BaseURL)
	}

	if st := open(t, ctx, unsubscribeURL); st != http.StatusOK {
		t.Fatalf("GET /u/{token}: status %d, want 200", st)
	}
	do(t, ctx, "wait for the Unsubscribe button", chromedp.WaitVisible(chromedp.CSS(`form[method=post] button[type=submit]`)))
	if h := heading(t, ctx); h != "Unsubscribe" {
		t.Errorf("unsubscribe heading %q, want Unsubscribe", h)
	}
	if got := textOf(t, ctx, `form[method=post] button`); got != "Unsubscribe" {
		t.Errorf("button %q, want Unsubscribe", got)
	}
	const centreLink = `a[href^="/p/"]`
	if got := textOf(t, ctx, centreLink); got != "Manage all your subscriptions in the preference centre" {
		t.Errorf("preference centre link %q, want %q", got, "Manage all your subscriptions in the preference centre")
	}
	shot(t, ctx, "journey-03-unsubscribe")
	if got := c.ledger(sub + "&type=unsubscribed"); len(got) != 0 {
		t.Fatalf("after opening the unsubscribe page: %d unsubscribed events, want 0", len(got))
	}

	// The preference centre: leave the list, allow tracking, correct the name.
	if st := submit(t, ctx, centreLink); st != http.StatusOK {
		t.Fatalf("follow the preference centre link: status %d, want 200", st)
	}
	if h := heading(t, ctx); h != "Your preferences" {
		t.Fatalf("centre heading %q, want %q", h, "Your preferences")
	}
	const (
		listBox     = `input[name=list][value=weekly]`
		trackingBox = `input[name=tracking]`
		saveButton  = `main > form button[type=submit]`
	)
	if !checked(t, ctx, listBox) || checked(t, ctx, trackingBox) {
		t.Fatalf("centre opens with list %v and tracking %v, want the list ticked and tracking not",
			checked(t, ctx, listBox), checked(t, ctx, trackingBox))
	}
	if got := value(t, ctx, "read name", chromedp.Value(chromedp.ID("name"))); got != "Ana Journey" {
		t.Errorf("name field %q, want %q", got, "Ana Journey")
	}
	shot(t, ctx, "journey-04-centre")
	do(t, ctx, "change the preferences",
		chromedp.Click(chromedp.CSS(listBox)),
		chromedp.Click(chromedp.CSS(trackingBox)),
		chromedp.Clear(chromedp.ID("name")),
		chromedp.SendKeys(chromedp.ID("name"), "Ana Renamed"))
	shot(t, ctx, "journey-05-centre-changed")
	if st := submit(t, ctx, saveButton); st != http.StatusOK {
		t.Errorf("save: status %d, want 200", st)
	}
	if got := textOf(t, ctx, `.notice[role=status]`); got != "Your preferences are saved." {
		t.Errorf("notice %q, want %q", got, "Your preferences are saved.")
	}
	if checked(t, ctx, listBox) || !checked(t, ctx, trackingBox) {
		t.Errorf("after saving: list %v, tracking %v; want the list unticked and tracking ticked",
			checked(t, ctx, listBox), checked(t, ctx, trackingBox))
	}
	if got := value(t, ctx, "read name", chromedp.Value(chromedp.ID("name"))); got != "Ana Renamed" {
		t.Errorf("name field %q after saving, want %q", got, "Ana Renamed")
	}
	shot(t, ctx, "journey-06-centre-saved")
	unsub := c.lastEvent(sub + "&type=unsubscribed")
	if unsub.Details["method"] != "preference_centre" || strings.Join(unsub.Lists, ",") != "weekly" || !strings.Contains(unsub.UserAgent, "Chrome") {
		t.Errorf("unsubscribed event %+v, want method preference_centre, lists [weekly] and Chromium's user agent", unsub)
	}
	if got := c.ledger(sub + "&type=tracking_granted"); len(got) != 1 {
		t.Errorf("%d tracking_granted events, want 1", len(got))
	}
	if fields := strings.Split(c.lastEvent(sub + "&type=rectified").Details["fields"], ","); !slices.Contains(fields, "name") {
		t.Errorf("rectified fields %v, want name among them", fields)
	}

	// Data rights take a data link, emailed on request.
	if got := textOf(t, ctx, `section.data form button[type=submit]`); got != "Email me a link to my data" {
		t.Errorf("data button %q, want %q", got, "Email me a link to my data")
	}
	if st := submit(t, ctx, `section.data form button[type=submit]`); st != http.StatusOK {
		t.Errorf("POST data-link: status %d, want 200", st)
	}
	if h := heading(t, ctx); h != "Check your inbox" {
		t.Fatalf("after asking for a data link: heading %q, want %q", h, "Check your inbox")
	}
	if got := textOf(t, ctx, "main p"); !strings.Contains(got, "We sent a link to your data") {
		t.Errorf("data link page says %q, want that a link was sent", got)
	}
	shot(t, ctx, "journey-07-data-link-sent")
	dataURL := linkIn(t, mailWithSubject(t, sink, addr, "Your link to your data").Text, srv.BaseURL+"/p/")
	if st := open(t, ctx, dataURL); st != http.StatusOK {
		t.Fatalf("GET data link: status %d, want 200", st)
	}
	do(t, ctx, "wait for the download link", chromedp.WaitVisible(chromedp.CSS(`section.data a[href$="/export"]`)))
	shot(t, ctx, "journey-08-data-link-open")

	// Download the export as a browser does: to a file, named by Chromium.
	if got := textOf(t, ctx, `section.data a[href$="/export"]`); got != "Download my data (JSON)" {
		t.Errorf("download link %q, want %q", got, "Download my data (JSON)")
	}
	export := download(t, ctx, `section.data a[href$="/export"]`)
	if export.SuggestedFilename != "my-data.json" {
		t.Errorf("download named %q, want my-data.json", export.SuggestedFilename)
	}
	var doc struct {
		Subscriber struct {
			ID    string `json:"id"`
			Email string `json:"email"`
		} `json:"subscriber"`
	}
	if err := json.Unmarshal(export.Body, &doc); err != nil {
		t.Fatalf("the downloaded file is not JSON: %v\n%.300s", err, export.Body)
	}
	if doc.Subscriber.Email != addr {
		t.Errorf("export subscriber.email %q, want %q", doc.Subscriber.Email, addr)
	}
	if got := c.ledger(sub + "&type=exported"); len(got) != 1 {
		t.Errorf("%d exported events after the download, want 1", len(got))
	}

	// Erase: a confirmation page whose box must be ticked.
	if st := submit(t, ctx, `section.data a[href$="/erase"]`); st != http.StatusOK {
		t.Fatalf("follow the erase link: status %d, want 200", st)
	}
	if h := heading(t, ctx); h != "Erase my data" {
		t.Fatalf("erase heading %q, want %q", h, "Erase my data")
	}
	const eraseButton = `form[method=post] button[type=submit]`
	if got := textOf(t, ctx, eraseButton); got != "Erase my data now" {
		t.Errorf("erase button %q, want %q", got, "Erase my data now")
	}
	shot(t, ctx, "journey-09-erase-confirm")
	erasePage := value(t, ctx, "read the location", chromedp.Location())
	// Without the box ticked, the browser's own check (required) stops the form: the
	// box fires "invalid", which it does only when a submission is refused.
	do(t, ctx, "press the button without ticking",
		chromedp.Evaluate[chromedp.Void](`window.eraseRefused = false; document.querySelector('input[name=confirm]').addEventListener('invalid', () => { window.eraseRefused = true })`),
		chromedp.Click(chromedp.CSS(eraseButton)))
	if _, err := chromedp.Run(ctx, chromedp.Poll[bool](`window.eraseRefused`, chromedp.WithPollingTimeout(5*time.Second))); err != nil {
		t.Fatalf("the browser did not refuse the form without the box ticked: %v", err)
	}
	if loc := value(t, ctx, "read the location", chromedp.Location()); loc != erasePage || heading(t, ctx) != "Erase my data" {
		t.Fatalf("after pressing without ticking: at %s, want to stay on %s", loc, erasePage)
	}
	shot(t, ctx, "journey-10-erase-not-ticked")
	if got := c.ledger(sub + "&type=erased"); len(got) != 0 {
		t.Fatalf("erased without the box ticked: %d erased events", len(got))
	}
	do(t, ctx, "tick the box", chromedp.Click(chromedp.CSS(`input[name=confirm]`)))
	if st := submit(t, ctx, eraseButton); st != http.StatusOK {
		t.Errorf("POST erase: status %d, want 200", st)
	}
	if h := heading(t, ctx); h != "Your data is erased" {
		t.Fatalf("after erasing: heading %q, want %q", h, "Your data is erased")
	}
	shot(t, ctx, "journey-11-erased")
	if got := c.ledger(sub + "&type=erased"); len(got) != 1 {
		t.Fatalf("%d erased events, want 1", len(got))
	}

	// The preference link of the old mail now says the data was erased.
	if st := open(t, ctx, mailPrefsURL); st != http.StatusGone {
		t.Errorf("old preference link after erasure: status %d, want 410", st)
	}
	if h := heading(t, ctx); h != "Your data was erased" {
		t.Errorf("old preference link after erasure: heading %q, want %q", h, "Your data was erased")
	}
	shot(t, ctx, "journey-12-old-link-erased")
}

// TestBrowserCentreInFrench shows the unsubscribe page and the preference centre in
// French: to a subscriber whose stored locale is French, whatever their browser
// says, and to one with no locale whose browser asks for French.
func TestBrowserCentreInFrench(t *testing.T) {
	sink := smtptest.New(t)
	srv := startServer(t, serveEnv(t.TempDir(), sink.URL()), "serve")
	b := newBrowser(t) // after the server: closed before it, see newBrowser
	c := newClient(t, srv.BaseURL)
	c.createList("weekly")
	const zoe, leo = "zoe.francaise@example.org", "leo.sans-langue@example.org"
	zoeID := c.signupAs(fmt.Sprintf(`{"email":%q,"name":"Zoé Martin","lists":["weekly"],"consent":true,"locale":"fr"}`, zoe))
	c.signupAs(fmt.Sprintf(`{"email":%q,"name":"Léo Durand","lists":["weekly"],"consent":true}`, leo))
	for _, addr := range []string{zoe, leo} {
		if st, page := c.do("POST", confirmURL(t, mailTo(t, sink, addr).Text), "application/x-www-form-urlencoded", ""); st != http.StatusOK {
			t.Fatalf("confirm %s: %d\n%s", addr, st, page)
		}
	}
	c.startCampaign("weekly", "Nouvelles")
	zoeMail := mailWithSubject(t, sink, zoe, "Nouvelles")
	leoMail := mailWithSubject(t, sink, leo, "Nouvelles")

	t.Run("stored locale", func(t *testing.T) {
		ctx := b.tab(t)
		// The browser asks for English: the pages follow the subscriber's choice.
		setAcceptLanguage(t, ctx, "en-GB,en")
		sub := "subscriber=" + url.QueryEscape(zoeID)
		if st := open(t, ctx, linkIn(t, zoeMail.Text, srv.BaseURL+"/u/")); st != http.StatusOK {
			t.Fatalf("GET /u/{token}: status %d, want 200", st)
		}
		wantFrench(t, ctx, "Se désabonner")
		if got := textOf(t, ctx, `form[method=post] button`); got != "Me désabonner" {
			t.Errorf("button %q, want %q", got, "Me désabonner")
		}
		if got := textOf(t, ctx, `a[href^="/p/"]`); got != "Gérer tous vos abonnements dans le centre de préférences" {
			t.Errorf("preference centre link %q, want the French text", got)
		}
		shot(t, ctx, "centre-fr-1-unsubscribe")

		submit(t, ctx, `a[href^="/p/"]`)
		wantFrench(t, ctx, "Vos préférences")
		if got := textOf(t, ctx, `main > form button[type=submit]`); got != "Enregistrer mes préférences" {
			t.Errorf("save button %q, want %q", got, "Enregistrer mes préférences")
		}
		if got := textOf(t, ctx, `section.data form button[type=submit]`); got != "M’envoyer un lien vers mes données" {
			t.Errorf("data button %q, want %q", got, "M’envoyer un lien vers mes données")
		}
		if got := value(t, ctx, "read locale", chromedp.Value(chromedp.ID("locale"))); got != "fr" {
			t.Errorf("language select %q, want fr", got)
		}
		shot(t, ctx, "centre-fr-2-centre")

		do(t, ctx, "allow tracking", chromedp.Click(chromedp.CSS(`input[name=tracking]`)))
		if st := submit(t, ctx, `main > form button[type=submit]`); st != http.StatusOK {
			t.Errorf("save: status %d, want 200", st)
		}
		wantFrench(t, ctx, "Vos préférences")
		if got := textOf(t, ctx, `.notice[role=status]`); got != "Vos préférences sont enregistrées." {
			t.Errorf("notice %q, want %q", got, "Vos préférences sont enregistrées.")
		}
		shot(t, ctx, "centre-fr-3-saved")
		if got := c.ledger(sub + "&type=tracking_granted"); len(got) != 1 {
			t.Errorf("%d tracking_granted events, want 1", len(got))
		}
		if got := c.ledger(sub + "&type=unsubscribed"); len(got) != 0 {
			t.Errorf("%d unsubscribed events, want 0: the list stayed ticked", len(got))
		}
	})

	t.Run("browser language", func(t *testing.T) {
		ctx := b.tab(t)
		setAcceptLanguage(t, ctx, "fr-FR,fr")
		if st := open(t, ctx, linkIn(t, leoMail.Text, srv.BaseURL+"/u/")); st != http.StatusOK {
			t.Fatalf("GET /u/{token}: status %d, want 200", st)
		}
		wantFrench(t, ctx, "Se désabonner")
		shot(t, ctx, "centre-fr-browser-1-unsubscribe")
		submit(t, ctx, `a[href^="/p/"]`)
		wantFrench(t, ctx, "Vos préférences")
		if got := value(t, ctx, "read locale", chromedp.Value(chromedp.ID("locale"))); got != "fr" {
			t.Errorf("language select %q, want fr (the browser's language)", got)
		}
		shot(t, ctx, "centre-fr-browser-2-centre")
	})
}

// setAcceptLanguage makes the tab send Accept-Language: lang, keeping its user agent.
func setAcceptLanguage(tb testing.TB, ctx context.Context, lang string) {
	tb.Helper()
	ua := value(tb, ctx, "read the user agent", chromedp.Evaluate[string](`navigator.userAgent`))
	if _, err := chromedp.Call(ctx, emulation.SetUserAgentOverride,
		emulation.SetUserAgentOverrideParams{UserAgent: ua, AcceptLanguage: lang}); err != nil {
		tb.Fatalf("Accept-Language %s: %v", lang, err)
	}
}

// wantFrench checks that the page is French and has the heading h.
func wantFrench(tb testing.TB, ctx context.Context, h string) {
	tb.Helper()
	if lang := value(tb, ctx, "read lang", chromedp.Evaluate[string](`document.documentElement.lang`)); lang != "fr" {
		tb.Errorf("<html lang=%q>, want fr", lang)
	}
	if got := heading(tb, ctx); got != h {
		tb.Errorf("heading %q, want %q", got, h)
	}
}

// textOf returns the trimmed visible text of the first element matching sel.
func textOf(tb testing.TB, ctx context.Context, sel string) string {
	tb.Helper()
	return strings.TrimSpace(value(tb, ctx, "read "+sel, chromedp.Text(chromedp.CSS(sel))))
}

// checked tells whether the checkbox sel is ticked.
func checked(tb testing.TB, ctx context.Context, sel string) bool {
	tb.Helper()
	return value(tb, ctx, "read "+sel, chromedp.Evaluate[bool](fmt.Sprintf(`document.querySelector(%q).checked`, sel)))
}

// signupAs posts a signup (a JSON body) and returns the new subscriber's ID, read
// from the ledger's newest signup event.
func (c *client) signupAs(body string) string {
	c.tb.Helper()
	if st, resp := c.do("POST", "/api/v1/signups", "application/json", body, "User-Agent", "browser-test-setup/1.0"); st != http.StatusAccepted {
		c.tb.Fatalf("signup %s: got %d %s, want 202", body, st, resp)
	}
	return c.lastEvent("type=signup").Subscriber
}

// mailWithSubject waits until the sink holds a message to addr with that subject.
func mailWithSubject(tb testing.TB, sink *smtptest.Sink, addr, subject string) mailer.CaughtMessage {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	for {
		changed := sink.Changed()
		for _, m := range sink.Messages() {
			if len(m.To) == 1 && strings.EqualFold(m.To[0], addr) && m.Subject == subject {
				return m
			}
		}
		select {
		case <-changed:
		case <-ctx.Done():
			tb.Fatalf("no mail to %s with subject %q within 20s (%d received in all)", addr, subject, sink.Received())
		}
	}
}

// linkIn returns the first link in a mail's text part that starts with prefix.
func linkIn(tb testing.TB, text, prefix string) string {
	tb.Helper()
	u := regexp.MustCompile(regexp.QuoteMeta(prefix) + `[A-Za-z0-9_\-.~%]+`).FindString(text)
	if u == "" {
		tb.Fatalf("no %s… link in the mail:\n%s", prefix, text)
	}
	return u
}

// downloaded is a file Chromium saved.
type downloaded struct {
	SuggestedFilename string
	Body              []byte
}

// download clicks the link sel and waits until Chromium has saved what it
// downloads, into a temporary folder where the file is named by its GUID.
func download(tb testing.TB, ctx context.Context, sel string) downloaded {
	tb.Helper()
	dir := tb.TempDir()
	if _, err := chromedp.Call(ctx, cdpbrowser.SetDownloadBehavior, cdpbrowser.SetDownloadBehaviorParams{
		Behavior: cdpbrowser.SetDownloadBehaviorBehaviorAllowAndName, DownloadPath: dir, EventsEnabled: new(true)}); err != nil {
		tb.Fatalf("allow downloads: %v", err)
	}
	// Subscribed before the click, so no event is missed.
	begins := chromedp.Events(ctx, cdpbrowser.DownloadWillBegin)
	progress := chromedp.Events(ctx, cdpbrowser.DownloadProgress)
	do(tb, ctx, "click "+sel, chromedp.Click(chromedp.CSS(sel)))
	var d downloaded
	var guid string
	for ev, err := range begins {
		if err != nil {
			tb.Fatalf("clicking %s started no download: %v", sel, err)
		}
		d.SuggestedFilename, guid = ev.SuggestedFilename, ev.GUID
		break
	}
	for ev, err := range progress {
		if err != nil {
			tb.Fatalf("download of %s: %v", sel, err)
		}
		if ev.GUID != guid {
			continue
		}
		if ev.State == cdpbrowser.DownloadProgressStateCanceled {
			tb.Fatalf("download of %s was cancelled", sel)
		}
		if ev.State == cdpbrowser.DownloadProgressStateCompleted {
			break
		}
	}
	body, err := os.ReadFile(filepath.Join(dir, guid))
	if err != nil {
		tb.Fatalf("read the downloaded file: %v", err)
	}
	d.Body = body
	return d
}
