package adminpages_test

import (
	"strings"
	"testing"
)

// TestEveryPageInBothLanguages renders every page as an admin in English and French:
// no catalog key is missing, and every form that posts carries the CSRF field.
func TestEveryPageInBothLanguages(t *testing.T) {
	st := newSite(t)
	people := st.seed(t)
	if m := untranslated.FindString(`<p>lists.err.nothing</p>`); m == "" {
		t.Fatal("the untranslated-key check finds nothing")
	}
	for _, path := range []string{"/admin/lists", "/admin/lists/weekly", "/admin/lists/weekly/edit", "/admin/lists/_new",
		"/admin/subscribers", "/admin/subscribers/" + people[0].id, "/admin/dpo", "/admin/dpo/ledger", "/admin/dpo/verify",
		"/admin/dpo/register", "/admin/lists/nothing"} {
		for _, lang := range []string{"en", "fr"} {
			p := st.do(t, "admin", lang, "GET", path, nil)
			if p.status != 200 && p.status != 404 {
				t.Fatalf("%s %s: %d %s", lang, path, p.status, p.body)
			}
			if !strings.Contains(p.body, `<html lang="`+lang+`">`) {
				t.Errorf("%s %s: not in %s", lang, path, lang)
			}
			if m := untranslated.FindString(p.body); m != "" {
				t.Errorf("%s %s: untranslated %q", lang, path, m)
			}
			if posts, csrf := strings.Count(p.body, `<form method="post"`), strings.Count(p.body, `name="_csrf" value="t"`); posts != csrf {
				t.Errorf("%s %s: %d forms post, %d carry the CSRF field", lang, path, posts, csrf)
			}
		}
	}
	fr := st.do(t, "admin", "fr", "GET", "/admin/lists/weekly", nil)
	fr.want(t, 200, "Liste\u202f: Weekly news", "Formulaire d’inscription", "Adresse e-mail")
}
