package optin_test

import (
	"context"
	"encoding/json"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/gofiber/fiber/v2"

	"consentmail/optin"
	"consentmail/preferences"
)

// titles are the page headings in each language.
var titles = map[string]map[string]string{
	"form":       {"en": "Subscribe to", "fr": "S’abonner à"},
	"subscribed": {"en": "Check your inbox", "fr": "Consultez votre boîte de réception"},
	"confirm":    {"en": "Confirm your subscription", "fr": "Confirmez votre abonnement"},
	"confirmed":  {"en": "You are subscribed", "fr": "Vous êtes abonné"},
	"already":    {"en": "Already confirmed", "fr": "Déjà confirmé"},
	"expired":    {"en": "This link has expired", "fr": "Ce lien a expiré"},
	"renewed":    {"en": "A new link is on its way", "fr": "Un nouveau lien est en route"},
	"stale":      {"en": "This link is no longer valid", "fr": "Ce lien n’est plus valable"},
	"invalid":    {"en": "This link is not valid", "fr": "Ce lien n’est pas valable"},
	"notfound":   {"en": "Page not found", "fr": "Page introuvable"},
}

// wantLang checks that page is in lang and shows the heading of kind.
func wantLang(tb testing.TB, page, kind, lang string) {
	tb.Helper()
	if !strings.Contains(page, `<html lang="`+lang+`">`) {
		m := regexp.MustCompile(`<html lang="([^"]*)">`).FindStringSubmatch(page)
		got := "none"
		if m != nil {
			got = m[1]
		}
		tb.Errorf("page language: got %s, want %s", got, lang)
	}
	if want := "<h1>" + titles[kind][lang]; !strings.Contains(page, want) {
		tb.Errorf("page heading: got %q, want it to start %q", regexp.MustCompile(`<h1>.*`).FindString(page), want)
	}
}

func TestPagesLanguage(t *testing.T) {
	// Each kind brings the env to a state, then fetches its page with opts.
	type fetch func(t *testing.T, e *env, locale string, opts ...reqOpt) (response, int)
	withLocale := func(email, locale string) map[string]any {
		b := signup(email)
		if locale != "" {
			b["locale"] = locale
		}
		return b
	}
	kinds := []struct {
		kind       string
		subscriber bool // the page knows the subscriber, so the stored locale applies
		fetch      fetch
	}{
		{"form", false, func(t *testing.T, e *env, _ string, opts ...reqOpt) (response, int) {
			return e.get(t, "/subscribe/newsletter", opts...), fiber.StatusOK
		}},
		{"notfound", false, func(t *testing.T, e *env, _ string, opts ...reqOpt) (response, int) {
			return e.get(t, "/subscribe/no-such-list", opts...), fiber.StatusNotFound
		}},
		{"invalid", false, func(t *testing.T, e *env, _ string, opts ...reqOpt) (response, int) {
			return e.get(t, "/confirm/garbage", opts...), fiber.StatusBadRequest
		}},
		{"confirm", true, func(t *testing.T, e *env, locale string, opts ...reqOpt) (response, int) {
			_, tok := e.subscribe(t, withLocale("ana@example.org", locale))
			return e.get(t, confirmPath(tok), opts...), fiber.StatusOK
		}},
		{"confirmed", true, func(t *testing.T, e *env, locale string, opts ...reqOpt) (response, int) {
			_, tok := e.subscribe(t, withLocale("ana@example.org", locale))
			return e.post(t, confirmPath(tok), opts...), fiber.StatusOK
		}},
		{"already", true, func(t *testing.T, e *env, locale string, opts ...reqOpt) (response, int) {
			_, tok := e.subscribe(t, withLocale("ana@example.org", locale))
			wantHTML(t, e.post(t, confirmPath(tok)), fiber.StatusOK)
			return e.post(t, confirmPath(tok), opts...), fiber.StatusOK
		}},
		{"expired", true, func(t *testing.T, e *env, locale string, opts ...reqOpt) (response, int) {
			_, tok := e.subscribe(t, withLocale("ana@example.org", locale))
			e.clock.Advance(optinTTL)
			return e.get(t, confirmPath(tok), opts...), fiber.StatusGone
		}},
		{"renewed", true, func(t *testing.T, e *env, locale string, opts ...reqOpt) (response, int) {
			_, tok := e.subscribe(t, withLocale("ana@example.org", locale))
			e.clock.Advance(optinTTL)
			r := e.post(t, confirmPath(tok)+"/renew", opts...)
			return r, r.status // the status is checked by TestConfirmExpiredAndRenew
		}},
		{"stale", true, func(t *testing.T, e *env, locale string, opts ...reqOpt) (response, int) {
			_, old := e.subscribe(t, withLocale("ana@example.org", locale))
			e.createList(t, preferences.List{ID: "events", Name: "Events", Purpose: "Invitations",
				ConsentText: "Yes.", Public: true})
			e.clock.Advance(preferences.OptinResendInterval)
			b := withLocale("ana@example.org", locale)
			b["lists"] = []string{"newsletter", "events"}
			e.mustAccept(t, b)
			return e.post(t, confirmPath(old), opts...), fiber.StatusGone
		}},
	}
	variants := []struct {
		name, stored, accept, want string
		needsSubscriber            bool
	}{
		{"default", "", "", "en", false},
		{"Accept-Language fr", "", "fr", "fr", false},
		{"Accept-Language fr-CA", "", "fr-CA,fr;q=0.9,en;q=0.5", "fr", false},
		{"Accept-Language de", "", "de", "en", false},
		{"Accept-Language en-GB", "", "en-GB", "en", false},
		{"stored fr", "fr", "", "fr", true},
		{"stored fr beats Accept-Language en", "fr", "en", "fr", true},
		{"stored en beats Accept-Language fr", "en", "fr", "en", true},
	}
	for _, k := range kinds {
		for _, v := range variants {
			if v.needsSubscriber && !k.subscriber {
				continue
			}
			t.Run(k.kind+"/"+v.name, func(t *testing.T) {
				e := newEnv(t)
				var opts []reqOpt
				if v.accept != "" {
					opts = append(opts, withLang(v.accept))
				}
				r, status := k.fetch(t, e, v.stored, opts...)
				page := wantHTML(t, r, status)
				wantLang(t, page, k.kind, v.want)
			})
		}
	}
}

func TestHostedFormPage(t *testing.T) {
	e := newEnv(t)
	r := e.get(t, "/subscribe/newsletter")
	page := wantHTML(t, r, fiber.StatusOK)
	checkbox := regexp.MustCompile(`<input type="checkbox" name="consent"[^>]*>`).FindString(page)
	checks := []struct {
		what string
		ok   bool
	}{
		{"a consent checkbox", checkbox != ""},
		{"the checkbox unticked", checkbox != "" && !strings.Contains(checkbox, "checked")},
		{"nothing pre-ticked anywhere", !strings.Contains(page, "checked")},
		{"the consent text", strings.Contains(page, newsletter.ConsentText)},
		{"the purpose", strings.Contains(page, newsletter.Purpose)},
		{"a link to the list's privacy notice", strings.Contains(page, `href="`+newsletter.PrivacyURL+`"`)},
		{"a POST form to /subscribe/newsletter", postFormTo("/subscribe/newsletter").MatchString(page)},
		{"an email field", strings.Contains(page, `name="email"`)},
		{"a name field", strings.Contains(page, `name="name"`)},
		{"a form token", formTokenRe.MatchString(page)},
		{"the honeypot", strings.Contains(page, `name="website"`)},
		{"no unformatted catalog verb", !strings.Contains(page, "%s") && !strings.Contains(page, "%!")},
		{"the list name in the title", regexp.MustCompile(`<title>[^<]*` + regexp.QuoteMeta(newsletter.Name)).MatchString(page)},
	}
	failed := false
	for _, c := range checks {
		if !c.ok {
			t.Errorf("hosted form: want %s", c.what)
			failed = true
		}
	}
	if failed {
		t.Logf("the page:\n%s", page)
	}
	if cc := r.header.Get("Cache-Control"); cc != "no-store" {
		t.Errorf("Cache-Control: got %q, want no-store (the page carries a form token)", cc)
	}
}

func TestHostedFormUnknownList(t *testing.T) {
	for _, list := range []string{"no-such-list", "internal", "Not_A_Slug"} {
		t.Run(list, func(t *testing.T) {
			e := newEnv(t)
			wantHTML(t, e.get(t, "/subscribe/"+list), fiber.StatusNotFound)
			vals := url.Values{"email": {"ana@example.org"}, "consent": {"true"}, "form_token": {e.formToken(t, "newsletter")}}
			wantHTML(t, e.postForm(t, "/subscribe/"+list, vals), fiber.StatusNotFound)
			e.wantNothingStored(t)
		})
	}
}

func TestHostedFormPost(t *testing.T) {
	// form returns what a browser sends from the hosted form of list.
	form := func(t *testing.T, e *env, list string) url.Values {
		return url.Values{"form_token": {e.formToken(t, list)}, "lists": {list}, "locale": {"en"},
			"email": {"ana@example.org"}, "name": {"Ana"}, "website": {""}, "consent": {"true"}}
	}
	tests := []struct {
		name   string
		change func(t *testing.T, e *env, v url.Values)
		want   int
		stored bool
	}{
		{"valid", func(*testing.T, *env, url.Values) {}, fiber.StatusAccepted, true},
		{"no form token", func(_ *testing.T, _ *env, v url.Values) { v.Del("form_token") }, fiber.StatusBadRequest, false},
		{"garbage form token", func(_ *testing.T, _ *env, v url.Values) { v.Set("form_token", "abc.def") }, fiber.StatusBadRequest, false},
		{"form token with a flipped char", func(_ *testing.T, _ *env, v url.Values) {
			tok := v.Get("form_token")
			v.Set("form_token", flip(tok, len(tok)/3))
		}, fiber.StatusBadRequest, false},
		{"form token of another list", func(t *testing.T, e *env, v url.Values) {
			e.createList(t, preferences.List{ID: "events", Name: "Events", Purpose: "Invitations", ConsentText: "Yes.", Public: true})
			v.Set("form_token", e.formToken(t, "events"))
		}, fiber.StatusBadRequest, false},
		{"confirmation token as form token", func(t *testing.T, e *env, v url.Values) {
			v.Set("form_token", optin.ConfirmToken(e.signer, preferences.OptinRequest{Subscriber: "newsletter",
				Lists: []string{"newsletter"}, Nonce: "00"}, e.clock.Now().Add(time.Hour)))
		}, fiber.StatusBadRequest, false},
		{"consent missing", func(_ *testing.T, _ *env, v url.Values) { v.Del("consent") }, fiber.StatusUnprocessableEntity, false},
		{"consent on", func(_ *testing.T, _ *env, v url.Values) { v.Set("consent", "on") }, fiber.StatusUnprocessableEntity, false},
		{"bad email", func(_ *testing.T, _ *env, v url.Values) { v.Set("email", "Ana <ana@example.org>") }, fiber.StatusUnprocessableEntity, false},
		{"CRLF in name", func(_ *testing.T, _ *env, v url.Values) { v.Set("name", "Ana\r\nBcc: x@y.org") }, fiber.StatusUnprocessableEntity, false},
		{"honeypot filled", func(_ *testing.T, _ *env, v url.Values) { v.Set("website", "http://spam.example") }, fiber.StatusAccepted, false},
		{"body over 16 KiB", func(_ *testing.T, _ *env, v url.Values) { v.Set("padding", strings.Repeat("x", optin.MaxBody)) },
			fiber.StatusRequestEntityTooLarge, false},
		{"lists field cannot add a private list", func(_ *testing.T, _ *env, v url.Values) { v.Set("lists", "internal") },
			fiber.StatusAccepted, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t)
			v := form(t, e, "newsletter")
			tc.change(t, e, v)
			page := wantHTML(t, e.postForm(t, "/subscribe/newsletter", v, withIP("192.0.2.80")), tc.want)
			if !tc.stored {
				e.wantNothingStored(t)
			}
			switch tc.want {
			case fiber.StatusAccepted:
				wantLang(t, page, "subscribed", "en")
			case fiber.StatusBadRequest, fiber.StatusUnprocessableEntity:
				// The form comes back, with what was typed, ready to be sent again.
				if !postFormTo("/subscribe/newsletter").MatchString(page) || !formTokenRe.MatchString(page) {
					t.Errorf("error page: want the form with a fresh token; got\n%s", page)
				}
			}
			if !tc.stored {
				return
			}
			evs := e.events(t, preferences.EventSignup)
			if len(evs) != 1 {
				t.Fatalf("signup events: got %d, want 1", len(evs))
			}
			if got := strings.Join(evs[0].Lists, ","); got != "newsletter" {
				t.Errorf("signup lists: got %q, want newsletter", got)
			}
			if evs[0].IP != "192.0.2.80" {
				t.Errorf("signup ip: got %q, want 192.0.2.80", evs[0].IP)
			}
			m := e.deliverOne(t)
			if got := strings.Join(m.To, ","); got != "ana@example.org" {
				t.Errorf("mail recipient: got %q, want ana@example.org", got)
			}
		})
	}
}

// A French visitor of the hosted form gets French pages and a French mail.
func TestHostedFormFrench(t *testing.T) {
	e := newEnv(t)
	page := wantHTML(t, e.get(t, "/subscribe/newsletter", withLang("fr")), fiber.StatusOK)
	wantLang(t, page, "form", "fr")
	m := regexp.MustCompile(`name="locale" value="([^"]*)"`).FindStringSubmatch(page)
	if m == nil || m[1] != "fr" {
		t.Fatalf("hidden locale field: got %v, want fr", m)
	}
	v := url.Values{"form_token": {e.formToken(t, "newsletter")}, "lists": {"newsletter"}, "locale": {m[1]},
		"email": {"ana@example.org"}, "consent": {"true"}}
	wantLang(t, wantHTML(t, e.postForm(t, "/subscribe/newsletter", v, withLang("fr")), fiber.StatusAccepted), "subscribed", "fr")
	mail := e.deliverOne(t)
	if mail.Subject != "Merci de confirmer votre abonnement" {
		t.Errorf("subject: got %q, want the French one", mail.Subject)
	}
	// The subscriber's stored locale now decides, whatever the browser says.
	wantLang(t, wantHTML(t, e.get(t, confirmPath(tokenOf(t, mail)), withLang("en")), fiber.StatusOK), "confirm", "fr")
}

// TestPagesInThePersonsLanguage: a list with a French translation shows a French
// visitor its French name, purpose and consent text on the form, in the confirmation
// mail and on the confirmation pages, and the signup records that text; the API's
// locale field picks the text it records.
func TestPagesInThePersonsLanguage(t *testing.T) {
	e := newEnv(t)
	l := newsletter
	l.ID = "lettre"
	// Set through JSON, as the admin API does.
	if err := json.Unmarshal([]byte(`{"translations":{"fr":{"name":"La Lettre","purpose":"Les nouvelles du mois",
		"consent_text":"J’accepte de recevoir la lettre par e-mail."}}}`), &l); err != nil {
		t.Fatal(err)
	}
	l = e.createList(t, l)
	var fr struct{ ConsentVersion, ConsentText string }
	if ct, err := e.store.ConsentTextVersion(t.Context(),
		preferences.ConsentVersion("lettre", "fr\x00J’accepte de recevoir la lettre par e-mail.")); err == nil {
		fr.ConsentVersion, fr.ConsentText = ct.Version, ct.Text
	}
	if fr.ConsentVersion == "" {
		t.Errorf("the French consent text has no version")
	}

	page := wantHTML(t, e.get(t, "/subscribe/lettre", withLang("fr-CA,fr;q=0.9")), fiber.StatusOK)
	for _, want := range []string{"La Lettre", "Les nouvelles du mois", "J’accepte de recevoir la lettre par e-mail."} {
		if !strings.Contains(page, want) {
			t.Errorf("French form lacks %q", want)
		}
	}
	if strings.Contains(page, l.ConsentText) {
		t.Errorf("French form shows the English consent text %q", l.ConsentText)
	}
	if en := wantHTML(t, e.get(t, "/subscribe/lettre", withLang("en")), fiber.StatusOK); !strings.Contains(en, l.ConsentText) {
		t.Errorf("English form lacks the base consent text %q", l.ConsentText)
	}

	v := url.Values{"form_token": {e.formToken(t, "lettre")}, "lists": {"lettre"}, "locale": {"fr"},
		"email": {"marie@example.org"}, "consent": {"true"}}
	wantHTML(t, e.postForm(t, "/subscribe/lettre", v, withLang("fr")), fiber.StatusAccepted)
	ev := e.events(t, preferences.EventSignup)
	if got := ev[len(ev)-1]; fr.ConsentVersion == "" || got.Details["consent_version.lettre"] != fr.ConsentVersion ||
		got.Details["consent_locale.lettre"] != "fr" {
		t.Errorf("form signup event: details %v; want the French text %s", got.Details, fr.ConsentVersion)
	}
	mail := e.deliverOne(t)
	if !strings.Contains(mail.Text, "La Lettre") {
		t.Errorf("confirmation mail lacks the French list name:\n%s", mail.Text)
	}
	confirm := wantHTML(t, e.get(t, confirmPath(tokenOf(t, mail))), fiber.StatusOK)
	if !strings.Contains(confirm, "La Lettre") || !strings.Contains(confirm, "Les nouvelles du mois") {
		t.Errorf("confirmation page lacks the French name and purpose:\n%s", confirm)
	}
	if done := wantHTML(t, e.post(t, confirmPath(tokenOf(t, mail))), fiber.StatusOK); !strings.Contains(done, "La Lettre") {
		t.Errorf("confirmed page lacks the French name")
	}

	for _, tc := range []struct{ locale, version, lang string }{
		{"fr", fr.ConsentVersion, "fr"}, {"en-GB", l.ConsentVersion, "en"}, {"", l.ConsentVersion, "en"}} {
		b := signup("api-" + tc.locale + "@example.org")
		b["lists"] = []string{"lettre"}
		if tc.locale != "" {
			b["locale"] = tc.locale
		}
		e.mustAccept(t, b)
		ev := e.events(t, preferences.EventSignup)
		if got := ev[len(ev)-1].Details; got["consent_version.lettre"] != tc.version || got["consent_locale.lettre"] != tc.lang {
			t.Errorf("API signup with locale %q: details %v, want version %s in %s", tc.locale, got, tc.version, tc.lang)
		}
	}
}

// TestEmbeddedFormPost posts what the snippet pasted into another website sends: no
// signed token, and the hosted form's rules otherwise (consent box, honeypot, public
// list), answered with pages.
func TestEmbeddedFormPost(t *testing.T) {
	e := newEnv(t)
	vals := url.Values{"locale": {"fr"}, "email": {"ana@example.org"}, "website": {""}}
	r := e.postForm(t, "/subscribe/newsletter/embedded", vals)
	wantHTML(t, r, fiber.StatusUnprocessableEntity) // no consent: the hosted form again
	e.wantNothingStored(t)
	vals.Set("website", "http://spam.example")
	vals.Set("consent", "true")
	wantHTML(t, e.postForm(t, "/subscribe/newsletter/embedded", vals), fiber.StatusAccepted) // honeypot: said yes, kept nothing
	e.wantNothingStored(t)
	wantHTML(t, e.postForm(t, "/subscribe/internal/embedded", url.Values{"email": {"ana@example.org"}, "consent": {"true"}}),
		fiber.StatusNotFound) // a private list has no form
	vals.Set("website", "")
	r = e.postForm(t, "/subscribe/newsletter/embedded", vals)
	wantHTML(t, r, fiber.StatusAccepted)
	if !strings.Contains(string(r.body), "boîte") && !strings.Contains(string(r.body), "e-mail") {
		t.Errorf("the answer is not the French page:\n%s", r.body)
	}
	events, _, err := e.store.Ledger(context.Background(), preferences.LedgerQuery{Type: preferences.EventSignup})
	if err != nil || len(events) != 1 {
		t.Fatalf("signups recorded: %d, %v; want 1", len(events), err)
	}
}
