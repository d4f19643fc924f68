package templates_test

import (
	"encoding/json"
	"maps"
	"os"
	"regexp"
	"slices"
	"strings"
	"testing"
	"unicode/utf8"

	"consentmail/templates"
)

func readCatalog(t *testing.T, lang string) map[string]string {
	t.Helper()
	raw, err := os.ReadFile("locales/" + lang + ".json")
	if err != nil {
		t.Fatal(err)
	}
	var cat map[string]string
	if err := json.Unmarshal(raw, &cat); err != nil {
		t.Fatalf("locales/%s.json: %v", lang, err)
	}
	return cat
}

func TestCatalogsHaveTheSameKeys(t *testing.T) {
	en, fr := readCatalog(t, "en"), readCatalog(t, "fr")
	for _, k := range slices.Sorted(maps.Keys(en)) {
		if _, ok := fr[k]; !ok {
			t.Errorf("fr.json has no %q (en: %q)", k, en[k])
		}
	}
	for _, k := range slices.Sorted(maps.Keys(fr)) {
		if _, ok := en[k]; !ok {
			t.Errorf("en.json has no %q (fr: %q)", k, fr[k])
		}
	}
	for k, v := range en {
		if strings.Count(v, "%") != strings.Count(fr[k], "%") {
			t.Errorf("%q: en %q and fr %q take different arguments", k, v, fr[k])
		}
	}
}

// frenchProblems lists what a French reader would stumble on in s: a word other than
// « e-mail » for an email (email, mail, mél, courriel), a straight apostrophe, a
// familiar « tu », and « : ; ! ? » or « » without their no-break space (U+00A0 or
// the narrow U+202F).
func frenchProblems(s string) []string {
	var out []string
	if m := otherMailWords.FindAllString(s, -1); m != nil {
		out = append(out, "say « e-mail » (« adresse e-mail » for an address), not "+strings.Join(m, ", "))
	}
	if strings.Contains(s, "'") {
		out = append(out, "straight apostrophe: use ’")
	}
	if m := familiar.FindAllString(s, -1); m != nil {
		out = append(out, "familiar form "+strings.Join(m, ", ")+": use « vous »")
	}
	for i, r := range s {
		before, _ := utf8.DecodeLastRuneInString(s[:i])
		after, _ := utf8.DecodeRuneInString(s[i+utf8.RuneLen(r):])
		switch {
		case strings.ContainsRune(":;!?»", r) && i > 0 && before != '\u00a0' && before != '\u202f':
			out = append(out, "no no-break space before "+string(r)+" in …"+s[max(0, i-12):i+utf8.RuneLen(r)])
		case r == '«' && after != '\u00a0' && after != '\u202f':
			out = append(out, "no no-break space after «")
		}
	}
	return out
}

var (
	otherMailWords = regexp.MustCompile(`(?i)(^|[^-\p{L}])(emails?|mails?|mél|courriels?)($|[^\p{L}])`)
	familiar       = regexp.MustCompile(`(?i)(^|[^\p{L}])(tu|toi|ton|ta|tes)($|[^\p{L}])|(^|[^\p{L}])t’`)
)

func TestFrenchProblemsAreFound(t *testing.T) {
	for _, bad := range []string{"Consultez votre boîte mail", "un email", "un courriel", "Ouvrez ce lien :",
		"Vous avez changé d’avis ?", "l'adresse", "Tu peux", "« e-mail »"} {
		if len(frenchProblems(bad)) == 0 {
			t.Errorf("%q: no problem found", bad)
		}
	}
	if p := frenchProblems("Votre adresse e-mail\u00a0: un e-mail\u202f; l’envoi\u202f! «\u202fOui\u202f»"); len(p) > 0 {
		t.Errorf("good French flagged: %v", p)
	}
}

func TestFrenchCatalogReadsAsFrench(t *testing.T) {
	fr := readCatalog(t, "fr")
	for _, k := range slices.Sorted(maps.Keys(fr)) {
		for _, p := range frenchProblems(fr[k]) {
			t.Errorf("fr.json %q: %s\n\t%q", k, p, fr[k])
		}
	}
}

// TestFrenchEmailsReadAsFrench renders every system email in French: what the
// templates add around the catalog's texts (labels before a link, a list's purpose)
// follows the same rules.
func TestFrenchEmailsReadAsFrench(t *testing.T) {
	r := newRenderer(t)
	link := struct{ Kind, Name, URL string }{"", "Zoé", "https://news.example.org/p/dG9rZW4"}
	for _, tc := range []struct {
		name string
		data any
	}{{"optin", fixedOptin}, {"datalink", link}, {"prefslink", link}} {
		if tc.name != "optin" {
			link.Kind = tc.name
			tc.data = link
		}
		e, err := r.Email("fr", tc.name, tc.data)
		if err != nil {
			t.Fatal(err)
		}
		// URLs and times are not French text.
		text := regexp.MustCompile(`https?://\S+|\d\d:\d\d`).ReplaceAllString(e.Subject+"\n"+e.Text, "")
		for _, p := range frenchProblems(text) {
			t.Errorf("%s (fr, text part): %s", tc.name, p)
		}
	}
}

func TestFrenchPagesHaveNoEnglishLeft(t *testing.T) {
	en, fr := readCatalog(t, "en"), readCatalog(t, "fr")
	same := []string{}
	for k, v := range en {
		if fr[k] == v && strings.ContainsAny(v, "abcdefghijklmnopqrstuvwxyz") && !strings.HasPrefix(k, "text.") {
			same = append(same, k)
		}
	}
	if len(same) > 0 {
		slices.Sort(same)
		t.Errorf("fr.json keeps the English text of %v", same)
	}
	_ = templates.Languages
}
