package adminapi_test

import (
	"encoding/json"
	"net/http"
	"testing"
	"time"

	"consentmail/preferences"
	"consentmail/preferences/internal/preftest"
)

// shownText is a consent text as the ledger and the consent-texts API show it.
type shownText struct {
	Version string `json:"version"`
	List    string `json:"list"`
	Locale  string `json:"locale"`
	Text    string `json:"text"`
}

type ledgerPage struct {
	Items []struct {
		Seq          uint64               `json:"seq"`
		Type         string               `json:"type"`
		Subscriber   string               `json:"subscriber"`
		Details      map[string]string    `json:"details"`
		ConsentTexts map[string]shownText `json:"consent_texts"`
	} `json:"items"`
}

// TestConsentTextIsPartOfTheProof: a list's consent text is given in English and
// French; a signup and an import record the text in the person's language, and every
// read of the ledger and the export resolves it to the exact text, its version and
// its language, also after the text changed and after the list was deleted, when
// every version stays readable.
func TestConsentTextIsPartOfTheProof(t *testing.T) {
	a := newAdminAPI(t)
	const en, fr = "Yes, send me the monthly news", "Oui, envoyez-moi les nouvelles du mois"
	r := a.as(t, preferences.RoleMarketer, "POST", "/api/v1/lists", withList(map[string]any{
		"translations": map[string]any{"fr": map[string]any{"name": "Nouvelles", "purpose": "Les nouvelles du produit, chaque mois",
			"consent_text": fr}}}))
	if r.status != http.StatusCreated {
		t.Fatalf("create list: status %d, body %s", r.status, r.body)
	}
	var created struct {
		ConsentVersion string `json:"consent_version"`
		Translations   map[string]struct {
			ConsentVersion string `json:"consent_version"`
		} `json:"translations"`
	}
	if err := json.Unmarshal(r.body, &created); err != nil {
		t.Fatal(err)
	}
	frVersion := created.Translations["fr"].ConsentVersion
	if frVersion == "" || frVersion == created.ConsentVersion {
		t.Fatalf("translations.fr.consent_version = %q, want its own version (base %q)", frVersion, created.ConsentVersion)
	}

	in := preftest.SignupInput("marie@example.org", "news")
	in.Locale = "fr-FR"
	marie := preftest.Signup(t, a.s, in).Subscriber
	ana := preftest.Signup(t, a.s, preftest.SignupInput("ana@example.org", "news")).Subscriber
	if _, err := a.s.Import(t.Context(), "news", "test", []preferences.ImportRow{{Email: "luc@example.org",
		IndexKey: "luc@example.org", Locale: "fr", ConsentedAt: time.Date(2025, 1, 2, 0, 0, 0, 0, time.UTC),
		ConsentSource: "paper form"}}, nil); err != nil {
		t.Fatal(err)
	}

	want := map[string]shownText{
		marie: {Version: frVersion, List: "news", Locale: "fr", Text: fr},
		ana:   {Version: created.ConsentVersion, List: "news", Locale: "en", Text: en},
	}
	// checkLedger reads every signup and imported event and checks the text each resolves to.
	checkLedger := func(t *testing.T, when string) {
		t.Helper()
		var page ledgerPage
		r := a.as(t, preferences.RoleDPO, "GET", "/api/v1/ledger", nil)
		if err := json.Unmarshal(r.body, &page); err != nil || r.status != 200 {
			t.Fatalf("%s: ledger status %d, body %s", when, r.status, r.body)
		}
		seen := 0
		for _, e := range page.Items {
			if e.Type != preferences.EventSignup && e.Type != preferences.EventImported {
				continue
			}
			seen++
			got := e.ConsentTexts["news"]
			w, ok := want[e.Subscriber]
			if !ok { // the import, in French
				w = want[marie]
			}
			if got != w {
				t.Errorf("%s: %s event %d consent_texts.news = %+v, want %+v", when, e.Type, e.Seq, got, w)
			}
			if e.Details["consent_version.news"] != w.Version || e.Details["consent_locale.news"] != w.Locale {
				t.Errorf("%s: %s event %d details = %v, want consent_version.news %s and consent_locale.news %s",
					when, e.Type, e.Seq, e.Details, w.Version, w.Locale)
			}
		}
		if seen != 3 {
			t.Errorf("%s: %d signup and imported events, want 3", when, seen)
		}
	}
	checkLedger(t, "as signed up")

	r = a.as(t, preferences.RoleDPO, "GET", "/api/v1/subscribers/"+marie+"/export", nil)
	var export struct {
		History []struct {
			Type         string               `json:"type"`
			ConsentTexts map[string]shownText `json:"consent_texts"`
		} `json:"consent_history"`
	}
	if err := json.Unmarshal(r.body, &export); err != nil || r.status != 200 {
		t.Fatalf("export: status %d, body %s", r.status, r.body)
	}
	if len(export.History) == 0 || export.History[0].Type != preferences.EventSignup ||
		export.History[0].ConsentTexts["news"] != want[marie] {
		t.Errorf("export consent_history = %+v, want the signup with %+v", export.History, want[marie])
	}

	// New texts: past events keep theirs; then the list goes.
	r = a.as(t, preferences.RoleMarketer, "PATCH", "/api/v1/lists/news", map[string]any{"consent_text": "Send me news",
		"translations": map[string]any{"fr": map[string]any{"name": "Nouvelles", "purpose": "Les nouvelles", "consent_text": "Envoyez-moi"}}})
	if r.status != 200 {
		t.Fatalf("patch: status %d, body %s", r.status, r.body)
	}
	if r := a.as(t, preferences.RoleMarketer, "DELETE", "/api/v1/lists/news", nil); r.status != http.StatusNoContent {
		t.Fatalf("delete: status %d, body %s", r.status, r.body)
	}
	checkLedger(t, "after the list was changed and deleted")

	var versions struct{ Items []shownText }
	r = a.as(t, preferences.RoleViewer, "GET", "/api/v1/lists/news/consent-texts", nil)
	if err := json.Unmarshal(r.body, &versions); err != nil || r.status != 200 {
		t.Fatalf("consent-texts of a deleted list: status %d, body %s", r.status, r.body)
	}
	texts := map[string]string{}
	for _, v := range versions.Items {
		texts[v.Locale+":"+v.Text] = v.Version
	}
	for _, w := range []string{"en:" + en, "fr:" + fr, "en:Send me news", "fr:Envoyez-moi"} {
		if texts[w] == "" {
			t.Errorf("consent-texts = %+v, missing %q", versions.Items, w)
		}
	}
	var one shownText
	r = a.as(t, preferences.RoleViewer, "GET", "/api/v1/consent-texts/"+frVersion, nil)
	if err := json.Unmarshal(r.body, &one); err != nil || one != want[marie] {
		t.Errorf("GET /api/v1/consent-texts/%s = %d %s, want %+v", frVersion, r.status, r.body, want[marie])
	}
	wantError(t, a.as(t, preferences.RoleViewer, "GET", "/api/v1/consent-texts/0000", nil), 404, "not_found")
	wantError(t, a.as(t, preferences.RoleViewer, "GET", "/api/v1/lists/ghost/consent-texts", nil), 404, "not_found")
}

func TestListTranslationsValidated(t *testing.T) {
	a := newAdminAPI(t)
	long := make([]byte, 201)
	for i := range long {
		long[i] = 'a'
	}
	for _, tc := range []struct {
		name, field  string
		translations any
	}{
		{"unknown locale", "translations.de", map[string]any{"de": map[string]any{"name": "N", "purpose": "P", "consent_text": "C"}}},
		{"missing consent text", "translations.fr.consent_text", map[string]any{"fr": map[string]any{"name": "N", "purpose": "P"}}},
		{"name too long", "translations.fr.name", map[string]any{"fr": map[string]any{"name": string(long), "purpose": "P", "consent_text": "C"}}},
		{"name on two lines", "translations.fr.name", map[string]any{"fr": map[string]any{"name": "a\nb", "purpose": "P", "consent_text": "C"}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			fields := wantError(t, a.as(t, preferences.RoleAdmin, "POST", "/api/v1/lists",
				withList(map[string]any{"translations": tc.translations})), 422, "validation_failed")
			if _, ok := fields[tc.field]; !ok {
				t.Errorf("fields = %v, want %s", fields, tc.field)
			}
		})
	}
}
