package adminpages_test

import "testing"

func TestSmoke(t *testing.T) {
	st := newSite(t)
	people := st.seed(t)
	for _, path := range []string{"/admin/lists", "/admin/lists/weekly", "/admin/lists/weekly/edit", "/admin/lists/_new",
		"/admin/subscribers", "/admin/subscribers/" + people[0].id, "/admin/dpo", "/admin/dpo/ledger", "/admin/dpo/verify",
		"/admin/dpo/register"} {
		for _, lang := range []string{"en", "fr"} {
			p := st.do(t, "admin", lang, "GET", path, nil)
			if p.status != 200 {
				t.Fatalf("%s %s: %d %s", lang, path, p.status, p.body)
			}
			if m := untranslated.FindString(p.body); m != "" {
				t.Errorf("%s %s: untranslated %q", lang, path, m)
			}
		}
	}
}
