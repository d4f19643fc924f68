package pages_test

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/gofiber/fiber/v2"

	"consentmail/preferences"
	"consentmail/preferences/internal/preftest"
	"consentmail/preferences/linktoken"
	"consentmail/preferences/pages"
)

// dataLinks records the subscribers the centre asks data links for.
type dataLinks struct{ preftest.Log[string] }

func (l *dataLinks) QueueDataLink(_ context.Context, subscriber string) error {
	l.Add(subscriber)
	return nil
}

type centreEnv struct {
	s      *preftest.Store
	app    *fiber.App
	signer *linktoken.Signer
	links  *dataLinks
	optins *preftest.Recorder
	sub    string
}

// newCentreEnv serves the preference centre over a store with a subscriber
// confirmed to "news"; "offers" is public too.
func newCentreEnv(t *testing.T) *centreEnv {
	t.Helper()
	s := preftest.NewStore(t)
	preftest.CreateList(t, s, "news")
	preftest.CreateList(t, s, "offers")
	preftest.CreateList(t, s, "staff", preftest.Private) // neither theirs nor public: never shown
	e := &centreEnv{s: s, app: preftest.NewApp(t), signer: preftest.UnsubscribeSigner(), links: &dataLinks{},
		optins: &preftest.Recorder{}, sub: preftest.Subscribed(t, s, "ana@example.org", "news")}
	pages.NewCentre(s.Store, preftest.Templates(t), e.signer, e.links, e.optins.Enqueue, preferences.NewEraser(s.Store, nil, nil), nil,
		"dpo@example.org", s.Clock.Now).Routes(e.app)
	return e
}

func (e *centreEnv) prefsToken() string {
	return linktoken.Preferences(e.signer, e.sub, e.s.Clock.Now())
}
func (e *centreEnv) dataToken() string {
	return linktoken.Data(e.signer, e.sub, e.s.Clock.Now())
}

func (e *centreEnv) do(t *testing.T, method, path string, form url.Values) (*http.Response, string) {
	t.Helper()
	var body io.Reader
	if form != nil {
		body = strings.NewReader(form.Encode())
	}
	req := httptest.NewRequest(method, path, body)
	if form != nil {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	req.Header.Set("User-Agent", "browser/1")
	req.Header.Set("X-Forwarded-For", "198.51.100.9")
	res, b := preftest.Do(t, e.app, req)
	return res, string(b)
}

var formTokenRE = regexp.MustCompile(`name="form_token" value="([^"]+)"`)

// formToken opens the page at path and returns its form token.
func (e *centreEnv) formToken(t *testing.T, path string) string {
	t.Helper()
	res, body := e.do(t, "GET", path, nil)
	m := formTokenRE.FindStringSubmatch(body)
	if res.StatusCode != 200 || m == nil {
		t.Fatalf("GET %s: %d, form token %v\n%s", path, res.StatusCode, m, body)
	}
	return m[1]
}

func (e *centreEnv) events(t *testing.T) []preferences.Event {
	return preftest.AllEvents(t, e.s, preferences.LedgerQuery{Subscriber: e.sub})
}

func TestCentrePageSavesEachChangeAsAnEvent(t *testing.T) {
	e := newCentreEnv(t)
	path := "/p/" + e.prefsToken()
	res, body := e.do(t, "GET", path, nil)
	if res.StatusCode != 200 || !strings.Contains(body, "List news") || !strings.Contains(body, "List offers") ||
		!strings.Contains(body, "Choose what a***@example.org receives") {
		t.Fatalf("centre page: %d\n%s", res.StatusCode, body)
	}
	if strings.Contains(body, "/export") {
		t.Error("a preference link offers the export; only a data link may")
	}
	if strings.Contains(body, "List staff") {
		t.Error("the centre shows a private list the person is not on")
	}
	before := len(e.events(t))
	e.s.Clock.Advance(preferences.OptinResendInterval) // past the signup's confirmation mail
	form := url.Values{"form_token": {e.formToken(t, path)}, "list": {"offers"}, "tracking": {"yes"},
		"name": {"Ana B."}, "locale": {"fr"}}
	res, body = e.do(t, "POST", path, form)
	if res.StatusCode != 200 || !strings.Contains(body, "enregistrées") {
		t.Fatalf("save: %d (want 200, the page now in French)\n%s", res.StatusCode, body)
	}
	got := map[string]preferences.Event{}
	for _, ev := range e.events(t)[before:] {
		got[ev.Type] = ev
		if ev.Details["method"] != "preference_centre" || ev.IP == "" {
			t.Errorf("%s event: details %v, ip %q; want method preference_centre and the IP", ev.Type, ev.Details, ev.IP)
		}
	}
	if ev := got[preferences.EventUnsubscribed]; len(ev.Lists) != 1 || ev.Lists[0] != "news" {
		t.Errorf("unsubscribed event %+v, want news", ev)
	}
	if ev := got[preferences.EventSignup]; len(ev.Lists) != 1 || ev.Lists[0] != "offers" {
		t.Errorf("signup event %+v, want offers (a fresh opt-in)", ev)
	}
	if _, ok := got[preferences.EventTrackingGranted]; !ok {
		t.Error("no tracking_granted event")
	}
	if ev := got[preferences.EventRectified]; ev.Details["fields"] != "name,locale" {
		t.Errorf("rectified event %+v, want fields name,locale", ev)
	}
	if c := e.optins.Calls(); len(c) != 1 || c[0].Lists[0] != "offers" {
		t.Errorf("opt-in mails queued %+v, want one for offers", c)
	}
	sub, err := e.s.Subscriber(t.Context(), e.sub)
	if err != nil {
		t.Fatal(err)
	}
	if sub.Name != "Ana B." || sub.Locale != "fr" || !sub.Tracking {
		t.Errorf("subscriber after save: %+v", sub)
	}
	// Saving the same again changes nothing and records nothing.
	n := len(e.events(t))
	form.Set("form_token", e.formToken(t, path))
	if res, _ := e.do(t, "POST", path, form); res.StatusCode != 200 || len(e.events(t)) != n {
		t.Errorf("a repeated save: %d, %d new events", res.StatusCode, len(e.events(t))-n)
	}
}

func TestCentreRefusesForgedOrExpiredFormTokens(t *testing.T) {
	e := newCentreEnv(t)
	path := "/p/" + e.prefsToken()
	good := e.formToken(t, path)
	other := e.signer.Sign("pform", e.s.Clock.Now().Add(time.Hour), "sub_someoneelse")
	before := len(e.events(t))
	for name, tok := range map[string]string{"none": "", "garbage": "xyz", "another subscriber's": other,
		"tampered": good[:len(good)-2] + "AA"} {
		res, _ := e.do(t, "POST", path, url.Values{"form_token": {tok}, "tracking": {"yes"}})
		if res.StatusCode != 400 {
			t.Errorf("%s form token: status %d, want 400", name, res.StatusCode)
		}
	}
	e.s.Clock.Advance(3 * time.Hour)
	if res, _ := e.do(t, "POST", path, url.Values{"form_token": {good}, "tracking": {"yes"}}); res.StatusCode != 400 {
		t.Errorf("expired form token: status %d, want 400", res.StatusCode)
	}
	if n := len(e.events(t)); n != before {
		t.Errorf("%d events recorded from refused forms", n-before)
	}
	if res, _ := e.do(t, "GET", "/p/forged-token", nil); res.StatusCode != 400 {
		t.Errorf("forged link: %d, want 400", res.StatusCode)
	}
}

func TestCentreExportAndEraseNeedADataLink(t *testing.T) {
	e := newCentreEnv(t)
	prefs := "/p/" + e.prefsToken()
	for _, r := range []struct{ method, path string }{{"GET", prefs + "/export"}, {"GET", prefs + "/erase"}, {"POST", prefs + "/erase"}} {
		res, body := e.do(t, r.method, r.path, url.Values{"confirm": {"yes"}, "form_token": {e.formToken(t, prefs)}})
		if res.StatusCode != 403 || !strings.Contains(body, "data link") {
			t.Errorf("%s %s with a preference link: %d, want 403 explaining the data link", r.method, r.path, res.StatusCode)
		}
	}
	// Asking for a data link queues one for the subscriber.
	if res, _ := e.do(t, "POST", prefs+"/data-link", url.Values{"form_token": {e.formToken(t, prefs)}}); res.StatusCode != 200 {
		t.Fatalf("data-link: %d", res.StatusCode)
	}
	if got := e.links.All(); !slices.Equal(got, []string{e.sub}) {
		t.Fatalf("data links asked for %v, want [%s]", got, e.sub)
	}

	data := "/p/" + e.dataToken()
	res, body := e.do(t, "GET", data+"/export", nil)
	if res.StatusCode != 200 || !strings.Contains(res.Header.Get("Content-Disposition"), "attachment") {
		t.Fatalf("export with a data link: %d %v", res.StatusCode, res.Header)
	}
	var doc preferences.Export
	if err := json.Unmarshal([]byte(body), &doc); err != nil {
		t.Fatal(err)
	}
	if doc.Subscriber.Email != "ana@example.org" || len(doc.ConsentHistory) < 2 || len(doc.Processing) != 1 ||
		doc.Processing[0].LegalBasis != preferences.LegalBasisConsent {
		t.Errorf("export document: %+v", doc)
	}
	if evs := preftest.AllEvents(t, e.s, preferences.LedgerQuery{Subscriber: e.sub, Type: preferences.EventExported}); len(evs) != 1 ||
		evs[0].Actor != "subscriber" {
		t.Errorf("exported events %+v", evs)
	}

	// Erasure takes an explicit confirmation.
	token := e.formToken(t, data+"/erase")
	if res, _ := e.do(t, "POST", data+"/erase", url.Values{"form_token": {token}}); res.StatusCode != 400 {
		t.Errorf("erase without the confirmation box: %d, want 400", res.StatusCode)
	}
	if sub, _ := e.s.Subscriber(t.Context(), e.sub); sub.Status == preferences.StatusErased {
		t.Fatal("erased without confirmation")
	}
	// The data link expires after an hour.
	e.s.Clock.Advance(time.Hour + time.Second)
	if res, _ := e.do(t, "POST", data+"/erase", url.Values{"form_token": {token}, "confirm": {"yes"}}); res.StatusCode != 400 {
		t.Errorf("erase with an expired data link: %d, want 400", res.StatusCode)
	}
	data = "/p/" + e.dataToken()
	token = e.formToken(t, data+"/erase")
	if res, body := e.do(t, "POST", data+"/erase", url.Values{"form_token": {token}, "confirm": {"yes"}}); res.StatusCode != 200 {
		t.Fatalf("erase: %d\n%s", res.StatusCode, body)
	}
	sub, err := e.s.Subscriber(t.Context(), e.sub)
	if err != nil {
		t.Fatal(err)
	}
	if sub.Status != preferences.StatusErased || sub.Email != "" {
		t.Errorf("after erasure: %+v", sub)
	}
	for _, ev := range e.events(t) {
		if ev.IP != "" || ev.UserAgent != "" {
			t.Errorf("event %d still shows personal data after erasure: %+v", ev.Seq, ev)
		}
	}
	if res, page := e.do(t, "GET", prefs, nil); res.StatusCode != 410 || !strings.Contains(page, "Your data was erased") {
		t.Errorf("centre after erasure: %d, want 410 saying the data was erased", res.StatusCode)
	}
	if _, ok := e.s.LookupEmail(t.Context(), "ana@example.org"); ok {
		t.Error("the erased address is still found by its lookup key")
	}
}

// Ticking lists again sends a confirmation at most once per OptinResendInterval,
// however often the (perhaps forwarded) link's holder unticks and ticks them, and the
// page says so; the data-link page says a link goes at most every 10 minutes.
func TestCentreMailIsThrottled(t *testing.T) {
	e := newCentreEnv(t)
	path := "/p/" + e.prefsToken()
	e.s.Clock.Advance(preferences.OptinResendInterval) // past the signup's confirmation mail
	save := func(lists ...string) string {
		t.Helper()
		res, body := e.do(t, "POST", path, url.Values{"form_token": {e.formToken(t, path)}, "list": lists})
		if res.StatusCode != 200 {
			t.Fatalf("save %v: %d\n%s", lists, res.StatusCode, body)
		}
		return body
	}
	for i := range 4 {
		body := save("news", "offers")
		if !strings.Contains(body, "at most one every 10 minutes") {
			t.Errorf("save %d: the page does not say confirmations are limited:\n%s", i, body)
		}
		save("news")
		e.s.Clock.Advance(time.Minute)
	}
	if c := e.optins.Calls(); len(c) != 1 {
		t.Fatalf("%d confirmations queued in 4 minutes, want 1: %+v", len(c), c)
	}
	e.s.Clock.Advance(preferences.OptinResendInterval)
	save("news", "offers")
	if c := e.optins.Calls(); len(c) != 2 {
		t.Errorf("%d confirmations queued, want 2 once the interval has passed", len(c))
	}

	res, body := e.do(t, "POST", path+"/data-link", url.Values{"form_token": {e.formToken(t, path)}})
	if res.StatusCode != 200 || !strings.Contains(body, "at most one every 10 minutes") {
		t.Errorf("data-link page: %d, want 200 saying a link goes at most every 10 minutes\n%s", res.StatusCode, body)
	}
}
