package templates_test

import (
	"encoding/json"
	"io/fs"
	"maps"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"unicode"
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
	// A CSV column's name is the file format's, not French: written « email », it is
	// no word for an email.
	words := columnNames.ReplaceAllString(s, "«»")
	if m := otherMailWords.FindAllString(words, -1); m != nil {
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
		case r == ':' && unicode.IsDigit(before) && unicode.IsDigit(after): // a time: 10:00
		case strings.ContainsRune(":;!?»", r) && i > 0 && before != '\u00a0' && before != '\u202f':
			out = append(out, "no no-break space before "+string(r)+" in …"+s[max(0, i-12):i+utf8.RuneLen(r)])
		case r == '«' && after != '\u00a0' && after != '\u202f':
			out = append(out, "no no-break space after «")
		}
	}
	return out
}

var (
	columnNames    = regexp.MustCompile(`«[\x{a0}\x{202f}][a-z_]+[\x{a0}\x{202f}]»`)
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

// The admin app's catalogs (the layout's, and each feature's en.json and fr.json
// beside its pages) are held to the same: the same keys and arguments, and French
// that reads as French.
func TestAdminCatalogsReadAsFrench(t *testing.T) {
	pairs := map[string][2]string{"templates": {"locales/admin.en.json", "locales/admin.fr.json"}}
	err := filepath.WalkDir("..", func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || d.Name() != "fr.json" {
			return err
		}
		en := filepath.Join(filepath.Dir(path), "en.json")
		if _, err := os.Stat(en); err == nil {
			pairs[filepath.Dir(path)] = [2]string{en, path}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(pairs) < 6 {
		t.Fatalf("found only %d admin catalogs: %v", len(pairs), pairs)
	}
	read := func(path string) map[string]string {
		raw, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		var cat map[string]string
		if err := json.Unmarshal(raw, &cat); err != nil {
			t.Fatalf("%s: %v", path, err)
		}
		return cat
	}
	for _, dir := range slices.Sorted(maps.Keys(pairs)) {
		en, fr := read(pairs[dir][0]), read(pairs[dir][1])
		for _, k := range slices.Sorted(maps.Keys(en)) {
			v, ok := fr[k]
			switch {
			case !ok:
				t.Errorf("%s: fr.json has no %q", dir, k)
			case strings.Count(en[k], "%") != strings.Count(v, "%"):
				t.Errorf("%s %q: en %q and fr %q take different arguments", dir, k, en[k], v)
			}
		}
		for _, k := range slices.Sorted(maps.Keys(fr)) {
			if _, ok := en[k]; !ok {
				t.Errorf("%s: en.json has no %q", dir, k)
			}
			for _, p := range frenchProblems(fr[k]) {
				t.Errorf("%s fr.json %q: %s\n\t%q", dir, k, p, fr[k])
			}
		}
	}
}
