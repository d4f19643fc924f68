package optin

import (
	"testing"
	"time"

	"consentmail/preferences"
	"consentmail/templates"
)

// A confirmation put together from the cached rendering is the mail rendered directly,
// byte for byte, whatever the name holds (markup, quotes, '+', the placeholders
// themselves), in every language, with or without a name, for any lists, twice (the
// second from the cache).
func TestCachedConfirmationIsTheRenderedOne(t *testing.T) {
	pages, err := templates.New(templates.Site{Company: "Ex & Co <b>", PrivacyURL: "https://example.test/privacy?a=1&b=2", Accent: "#aa3300"})
	if err != nil {
		t.Fatal(err)
	}
	c := newConfirmations(pages)
	listSets := [][]preferences.List{
		{{ID: "news", Name: "News", Purpose: "Our news, <monthly> & more"}},
		{{ID: "a", Name: "L'« offre »", Purpose: ""}, {ID: "b", Name: "B+C", Purpose: "\"quoted\""}},
	}
	names := []string{"", "Ana", `Zoë <script>alert("x")</script> & 'co' +1`, "a+b", namePlaceholder, tokenPlaceholder + " " + namePlaceholder, "日本語 名前"}
	expires := time.Date(2026, 12, 6, 10, 31, 42, 0, time.UTC)
	const prefix = "https://example.test/base/confirm/"
	const token = "cHVycG9zZQ-_x.Zm9vYmFy"
	for _, lang := range templates.Languages {
		for _, lists := range listSets {
			for _, name := range names {
				want, err := pages.Email(lang, "optin", optinMail{Name: name, Lists: lists, ConfirmURL: prefix + token, Expires: expires})
				if err != nil {
					t.Fatal(err)
				}
				for round := range 2 {
					got, err := c.render(lang, name, lists, prefix, token, expires)
					if err != nil {
						t.Fatal(err)
					}
					if got != want {
						t.Fatalf("%s, name %q, lists %v, round %d:\ngot  %+v\nwant %+v", lang, name, lists, round, got, want)
					}
				}
			}
		}
	}
}

// BenchmarkConfirmationRender puts one person's name and link into a cached
// confirmation, as the mailer does for every signup.
//
//	go test ./optin -run '^$' -bench ConfirmationRender -benchmem
func BenchmarkConfirmationRender(b *testing.B) {
	pages, err := templates.New(templates.Site{Company: "Example Co", PrivacyURL: "https://example.test/privacy"})
	if err != nil {
		b.Fatal(err)
	}
	c := newConfirmations(pages)
	lists := []preferences.List{{ID: "news", Name: "News", Purpose: "Our news, once a month"}}
	expires := time.Date(2026, 12, 6, 10, 31, 42, 0, time.UTC)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := c.render("en", "Ana Example", lists, "https://example.test/confirm/", "cHVycG9zZQ-_x.Zm9vYmFyYmF6cXV4", expires); err != nil {
			b.Fatal(err)
		}
	}
}
