package templates_test

import (
	"bytes"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"consentmail/templates"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata")

// golden compares got with testdata/name, or rewrites it with -update.
func golden(t *testing.T, name, got string) {
	t.Helper()
	path := filepath.Join("testdata", name)
	if *update {
		if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test ./templates -update to create it)", err)
	}
	if got != string(want) {
		t.Errorf("%s differs from the golden file (go test ./templates -update rewrites it)\ngot:\n%s", name, got)
	}
}

type list struct{ ID, Name, Purpose string }

type optinData struct {
	Name       string
	Lists      []list
	ConfirmURL string
	Expires    time.Time
}

var fixedOptin = optinData{
	Name:       "Ana <b>&</b> Co",
	Lists:      []list{{"weekly", "Weekly news", "News about the shop, once a week."}},
	ConfirmURL: "https://news.example.org/confirm/Y29uZmlybR8xNzk2MTE3MTU1.Gw3knN45jIK2C0frSoB31Ay2r0w",
	Expires:    time.Date(2026, 12, 1, 9, 25, 0, 0, time.UTC),
}

func newRenderer(t testing.TB) *templates.Renderer {
	t.Helper()
	r, err := templates.New(templates.Site{Company: "Acme Shop", PrivacyURL: "https://acme.example/privacy"})
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func TestOptinEmailGolden(t *testing.T) {
	r := newRenderer(t)
	for _, lang := range templates.Languages {
		t.Run(lang, func(t *testing.T) {
			e, err := r.Email(lang, "optin", fixedOptin)
			if err != nil {
				t.Fatal(err)
			}
			golden(t, "optin."+lang+".subject.golden", e.Subject+"\n")
			golden(t, "optin."+lang+".html.golden", e.HTML)
			golden(t, "optin."+lang+".txt.golden", e.Text)
			// The name is escaped in HTML and left as typed in plain text.
			if strings.Contains(e.HTML, "<b>&</b>") || !strings.Contains(e.HTML, "Ana &lt;b&gt;&amp;&lt;/b&gt; Co") {
				t.Errorf("HTML part does not escape the name")
			}
			if !strings.Contains(e.Text, "Ana <b>&</b> Co") || !strings.Contains(e.Text, fixedOptin.ConfirmURL) {
				t.Errorf("text part lacks the name or the link:\n%s", e.Text)
			}
		})
	}
}

func TestNegotiate(t *testing.T) {
	for _, tc := range []struct{ stored, accept, want string }{
		{"", "", "en"},
		{"fr", "", "fr"},
		{"fr-CA", "en", "fr"},
		{"en", "fr-FR,fr;q=0.9", "en"},
		{"", "fr-FR,fr;q=0.9,en;q=0.5", "fr"},
		{"", "de-DE,de;q=0.9", "en"},
		{"", "de,fr;q=0.5", "fr"},
		{"xx-invalid-@@", "fr", "fr"},
		{"", "garbage;;;q=x", "en"},
	} {
		if got := templates.Negotiate(tc.stored, tc.accept); got != tc.want {
			t.Errorf("Negotiate(%q, %q) = %q, want %q", tc.stored, tc.accept, got, tc.want)
		}
	}
}

// Every catalog key used by a template exists in every language, so no page ever
// shows a raw key.
func TestPagesHaveNoMissingTranslations(t *testing.T) {
	r := newRenderer(t)
	pages := []struct {
		name, title string
		data        any
		args        []any
	}{
		{"message", "confirmed.title", map[string]any{"Paragraphs": []string{"confirmed.body"}, "After": []string{"confirmed.unsubscribe"}}, nil},
		{"confirm", "confirm.title", map[string]any{"Email": "a***@example.org", "Action": "/confirm/x", "Lists": []list{{"w", "Weekly", "News"}}}, nil},
		{"subscribe", "subscribe.title", map[string]any{"List": map[string]any{"ID": "w", "Name": "Weekly", "Purpose": "News",
			"ConsentText": "I agree.", "PrivacyURL": "https://acme.example/p"}, "Action": "/subscribe/w", "FormToken": "t",
			"Errors": map[string]string{"form": "form.invalid", "email": "field.email", "consent": "field.consent"}}, []any{"Weekly"}},
	}
	for _, lang := range templates.Languages {
		for _, p := range pages {
			var buf bytes.Buffer
			if err := r.Page(&buf, lang, p.name, p.title, p.data, p.args...); err != nil {
				t.Fatalf("%s/%s: %v", lang, p.name, err)
			}
			out := buf.String()
			if !strings.Contains(out, `<link rel="stylesheet" href="/static/brand.css">`) {
				t.Errorf("%s/%s does not load the accent colour (brand.css)", lang, p.name)
			}
			for _, prefix := range []string{"confirm.", "confirmed.", "subscribe.", "field.", "form.", "footer.", "%!"} {
				if strings.Contains(out, ">"+prefix) || strings.Contains(out, " "+prefix) || strings.Contains(out, "%!") {
					t.Errorf("%s/%s shows an untranslated key or bad format (%s):\n%s", lang, p.name, prefix, out)
					break
				}
			}
			if !strings.Contains(out, `<html lang="`+lang+`">`) || !strings.Contains(out, "/static/style.css") {
				t.Errorf("%s/%s lacks the lang attribute or the stylesheet", lang, p.name)
			}
		}
	}
	var buf bytes.Buffer
	if err := r.Page(&buf, "fr", "subscribe", "subscribe.title", pages[2].data, "Weekly"); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(buf.String(), "<h1>S’abonner à Weekly</h1>") || strings.Contains(buf.String(), "checked") {
		t.Errorf("French signup form: want the list in the title and no pre-ticked box:\n%s", buf.String())
	}
}

func BenchmarkOptinEmail(b *testing.B) {
	r := newRenderer(b)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := r.Email("fr", "optin", fixedOptin); err != nil {
			b.Fatal(err)
		}
	}
}

// The accent colour, set once, colours system mail's button and link too (mail
// cannot load brand.css); anything but a hex colour leaves the default.
func TestSystemMailTakesTheAccent(t *testing.T) {
	for accent, want := range map[string]string{"#aa3300": "background:#aa3300", "": "background:#0b57d0",
		"red;}x{": "background:#0b57d0"} {
		r, err := templates.New(templates.Site{Company: "Acme", Accent: accent})
		if err != nil {
			t.Fatal(err)
		}
		e, err := r.Email("en", "optin", fixedOptin)
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(e.HTML, want) || strings.Contains(e.HTML, "red;}") {
			t.Errorf("accent %q: the mail's button is not %q", accent, want)
		}
	}
}
