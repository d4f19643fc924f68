package pages_test

import (
	"net/url"
	"strings"
	"testing"

	"consentmail/preferences"
	"consentmail/preferences/internal/preftest"
	"consentmail/preferences/linktoken"
)

// TestUnsubscribePageNamesOnlyTheListsThePersonIsOn: a campaign to Newsletter and
// Offers links to /u for both; someone only on Offers is told they will stop getting
// Offers, and someone on neither any more is told so, with no button.
func TestUnsubscribePageNamesOnlyTheListsThePersonIsOn(t *testing.T) {
	e := newUnsubEnv(t)
	e.sub = preftest.Subscribed(t, e.s, "offers-only@example.org", "offers")
	res, page := e.do(t, "GET", e.token("news", "offers"), "")
	if res.StatusCode != 200 || !strings.Contains(page, "List offers") || strings.Contains(page, "List news") {
		t.Fatalf("GET for someone only on offers: %d, want 200 naming offers only:\n%s", res.StatusCode, page)
	}
	if _, err := e.s.Unsubscribe(t.Context(), preferences.UnsubscribeInput{Subscriber: e.sub, Method: "api"}); err != nil {
		t.Fatal(err)
	}
	res, page = e.do(t, "GET", e.token("news", "offers"), "")
	if res.StatusCode != 200 || strings.Contains(page, "List offers") || strings.Contains(page, "<form") ||
		!strings.Contains(page, "not subscribed to these lists any more") || !strings.Contains(page, `href="/p/`) {
		t.Fatalf("GET for someone on neither list: %d, want no list and no button, a link to the centre:\n%s", res.StatusCode, page)
	}
}

// TestRestrictedPersonSeesItAndCanWithdraw: the unsubscribe page and the centre say
// the processing is restricted, name the contact, and still take a withdrawal.
func TestRestrictedPersonSeesItAndCanWithdraw(t *testing.T) {
	e := newUnsubEnv(t)
	if err := e.s.Restrict(t.Context(), preferences.StatusChange{Subscriber: e.sub, Actor: "dpo"}); err != nil {
		t.Fatal(err)
	}
	res, page := e.do(t, "GET", e.token("news"), "")
	if res.StatusCode != 200 || !strings.Contains(page, "restricted") || !strings.Contains(page, `href="mailto:dpo@example.org"`) ||
		!strings.Contains(page, `<form method="post" action="/u/`) || !strings.Contains(page, "List news") {
		t.Fatalf("unsubscribe page of a restricted person: %d, want the restriction, the contact and the button:\n%s", res.StatusCode, page)
	}
	if res, _ := e.do(t, "POST", e.token("news"), ""); res.StatusCode != 200 || e.states(t)["news"] != preferences.SubUnsubscribed {
		t.Fatalf("withdrawal of a restricted person: %d, news %s; want 200, unsubscribed", res.StatusCode, e.states(t)["news"])
	}

	c := newCentreEnv(t)
	if err := c.s.Restrict(t.Context(), preferences.StatusChange{Subscriber: c.sub, Actor: "dpo"}); err != nil {
		t.Fatal(err)
	}
	path := "/p/" + c.prefsToken()
	res, page = c.do(t, "GET", path, nil)
	if res.StatusCode != 200 || !strings.Contains(page, "restricted") || !strings.Contains(page, `href="mailto:dpo@example.org"`) {
		t.Fatalf("centre of a restricted person: %d, want the restriction and the contact:\n%s", res.StatusCode, page)
	}
	form := url.Values{"form_token": {c.formToken(t, path)}} // news unticked
	if res, page = c.do(t, "POST", path, form); res.StatusCode != 200 {
		t.Fatalf("centre withdrawal of a restricted person: %d\n%s", res.StatusCode, page)
	}
	sub, err := c.s.Subscriber(t.Context(), c.sub)
	if err != nil || sub.Status != preferences.StatusRestricted || len(sub.Subscriptions) != 1 ||
		sub.Subscriptions[0].Status != preferences.SubUnsubscribed {
		t.Fatalf("after unticking news: %+v, %v; want still restricted, news unsubscribed", sub, err)
	}
}

// TestOldLinksOfAnErasedPersonSayTheDataWasErased: the unsubscribe link (GET and
// one-click POST) and the preference link of an erased person say so.
func TestOldLinksOfAnErasedPersonSayTheDataWasErased(t *testing.T) {
	c := newCentreEnv(t)
	unsub := newUnsubEnv(t)
	unsub.sub = preftest.Subscribed(t, unsub.s, "gone@example.org", "news")
	if _, err := c.s.Erase(t.Context(), c.sub, "dpo"); err != nil {
		t.Fatal(err)
	}
	if _, err := unsub.s.Erase(t.Context(), unsub.sub, "dpo"); err != nil {
		t.Fatal(err)
	}
	for name, got := range map[string]func() (int, string){
		"GET /u": func() (int, string) { r, p := unsub.do(t, "GET", unsub.token("news"), ""); return r.StatusCode, p },
		"POST /u": func() (int, string) {
			r, p := unsub.do(t, "POST", unsub.token("news"), "List-Unsubscribe=One-Click")
			return r.StatusCode, p
		},
		"GET /p": func() (int, string) { r, p := c.do(t, "GET", "/p/"+c.prefsToken(), nil); return r.StatusCode, p },
		"GET /p data link": func() (int, string) {
			r, p := c.do(t, "GET", "/p/"+linktoken.Data(c.signer, c.sub, c.s.Clock.Now())+"/export", nil)
			return r.StatusCode, p
		},
	} {
		status, page := got()
		if status >= 500 || !strings.Contains(page, "Your data was erased") || strings.Contains(page, "<form") {
			t.Errorf("%s of an erased person: %d, want a page saying the data was erased:\n%s", name, status, page)
		}
	}
}

// TestErasurePageSaysPseudonymous: what is kept of an erased address (a keyed hash in
// the suppression list) is pseudonymous, not anonymous, in both languages.
func TestErasurePageSaysPseudonymous(t *testing.T) {
	e := newCentreEnv(t)
	path := "/p/" + e.dataToken() + "/erase"
	_, page := e.do(t, "GET", path, nil)
	if !strings.Contains(page, "pseudonymous") || !strings.Contains(page, "suppression list") || strings.Contains(page, "anonymous record") {
		t.Errorf("erasure page:\n%s", page)
	}
	if _, err := e.s.ChangePreferences(t.Context(), preferences.PreferenceChange{Subscriber: e.sub, Locale: ptr("fr")}, nil); err != nil {
		t.Fatal(err)
	}
	_, page = e.do(t, "GET", path, nil)
	if !strings.Contains(page, "pseudonyme") || strings.Contains(page, "anonyme") {
		t.Errorf("French erasure page:\n%s", page)
	}
}

func ptr[T any](v T) *T { return &v }
