package templates_test

import (
	"errors"
	htmltemplate "html/template"
	"os"
	"strings"
	"sync"
	"testing"

	"consentmail/templates"
)

// fixedRecipient and fixedFooter are the data of every campaign test: no clock, no
// random IDs, so golden files are stable.
var fixedRecipient = templates.CampaignData{
	Subscriber: templates.SubscriberData{Name: "Ana Lima", Email: "ana@example.org", Locale: "en",
		Attributes: map[string]any{"city": "Lyon", "favourites": []string{"Market tote", "Linen apron"}}},
	Campaign:       templates.CampaignInfo{ID: "cmp_01", Name: "Spring news"},
	UnsubscribeURL: "https://news.example.org/u/dW5zdWI.c2ln",
	PreferencesURL: "https://news.example.org/p/cHJlZnM.c2ln",
}

var fixedFooter = templates.Footer{
	Company:       "Acme Shop",
	PostalAddress: "12 rue des Tanneurs\n69001 Lyon, France",
}

func parse(t testing.TB, subject, html, text string) *templates.Campaign {
	t.Helper()
	c, err := templates.ParseCampaign(subject, html, text)
	if err != nil {
		t.Fatalf("ParseCampaign: %v", err)
	}
	return c
}

func render(t testing.TB, c *templates.Campaign, data templates.CampaignData, f templates.Footer) templates.Rendered {
	t.Helper()
	r, err := c.Render(data, f)
	if err != nil {
		t.Fatalf("Render: %v", err)
	}
	return r
}

// body is the text part without its footer.
func body(text string) string {
	if strings.HasPrefix(text, "-- \n") {
		return ""
	}
	b, _, _ := strings.Cut(text, "\n\n-- \n")
	return b
}

func newsletter(t testing.TB) string {
	t.Helper()
	src, err := os.ReadFile("testdata/newsletter.html")
	if err != nil {
		t.Fatal(err)
	}
	return string(src)
}

func TestParseCampaignErrors(t *testing.T) {
	// page puts line at line 7 of a page.
	page := func(line string) string {
		return "<!doctype html>\n<html>\n<body>\n<h1>News</h1>\n<p>One</p>\n<p>Two</p>\n" + line + "\n</body>\n</html>\n"
	}
	for _, tc := range []struct {
		name                string
		subject, html, text string
		part                string
		line                int
		reason              string // a part of the reason
	}{
		{"syntax error", "News", page("<p>{{if .Subscriber.Name}</p>"), "", "html", 7, "bad character"},
		{"if without value", "News", page("<p>{{if}}</p>"), "", "html", 7, "missing value for if"},
		{"end without if", "News", page("<p>{{end}}</p>"), "", "html", 7, "unexpected {{end}}"},
		{"unclosed if, found at the end", "News", page("<p>{{if .Subscriber.Name}}</p>"), "", "html", 10, "unexpected EOF"},
		{"unknown field", "News", page("<p>{{.Subscriber.Nmae}}</p>"), "", "html", 7, ".Subscriber has no field Nmae (it has Name, Email, Locale, Attributes)"},
		{"unknown top field", "News", page("<p>{{.Unsubscribe}}</p>"), "", "html", 7, "the campaign data has no field Unsubscribe"},
		{"unknown field in a branch not taken", "News", page("<p>{{if .Subscriber.Attributes.vip}}{{.Campaign.Nmae}}{{end}}</p>"), "", "html", 7, ".Campaign has no field Nmae"},
		{"unknown field under with", "News", page("{{with .Subscriber}}<p>{{.Nmae}}</p>{{end}}"), "", "html", 7, ".Subscriber has no field Nmae"},
		{"unknown field under $", "News", page("{{range .Subscriber.Attributes.tags}}<p>{{$.Campaign.Title}}</p>{{end}}"), "", "html", 7, "$.Campaign has no field Title"},
		{"field of a string", "News", page("<p>{{.Subscriber.Name.First}}</p>"), "", "html", 7, ".Subscriber.Name is a string and has no field First"},
		{"unknown function", "News", page("<p>{{shout .Subscriber.Name}}</p>"), "", "html", 7, `function "shout" not defined`},
		{"undefined template", "News", page(`<p>{{template "header" .}}</p>`), "", "html", 7, `no template "header" is defined`},
		{"wrong types", "News", page("<p>{{if lt .Subscriber.Name 3}}x{{end}}</p>"), "", "html", 7, "incompatible types for comparison"},
		{"wrong number of arguments", "News", page("<p>{{upper}}</p>"), "", "html", 7, "wrong number of args for upper"},
		{"call", "News", page("<p>{{call .Subscriber.Attributes.f}}</p>"), "", "html", 7, "call is not allowed"},
		{"huge range", "News", page("<p>{{range 1000000}}x{{end}}</p>"), "", "html", 7, "at most 10000"},
		{"ends inside an attribute", "News", `<p>Hi</p><a href="{{.UnsubscribeURL}}`, "", "html", 0, "ends inside a tag"},
		{"ends inside a comment", "News", "<p>Hi</p><!-- to do", "", "html", 0, "ends inside"},
		{"element left open", "News", page(`<div style="display:none">`), "", "html", 0, "<div> is left open"},
		{"table left open", "News", "<table><tr><td>Hi", "", "html", 0, "<table> <tbody> <tr> <td> is left open"},
		{"link left open", "News", page(`<a href="https://x.example">`), "", "html", 0, "<a> is left open"},
		{"empty html", "News", " \n", "", "html", 0, "is empty"},
		{"html too big", "News", "<p>" + strings.Repeat("x", templates.MaxHTMLBytes) + "</p>", "", "html", 0, "the limit is 524288"},
		{"empty subject", "", "<p>Hi</p>", "", "subject", 0, "is empty"},
		{"subject syntax", "Hello {{.Subscriber.Name", "<p>Hi</p>", "", "subject", 1, "unclosed action"},
		{"subject unknown field", "Hello {{.Subscriber.Nmae}}", "<p>Hi</p>", "", "subject", 1, "no field Nmae"},
		{"subject on two lines", "Hello\nthere", "<p>Hi</p>", "", "subject", 1, "must be one line"},
		{"subject renders a newline", `Hello{{"\r\n"}}Bcc: x@example.org`, "<p>Hi</p>", "", "subject", 0, "renders on several lines"},
		{"subject too big", strings.Repeat("x", 999), "<p>Hi</p>", "", "subject", 0, "is 999 bytes long; the limit is 998"},
		{"subject renders too long", `{{printf "%0999d" 0}}`, "<p>Hi</p>", "", "subject", 0, "renders 999 bytes; the limit is 998"},
		{"text syntax", "News", "<p>Hi</p>", "Hello,\n\n{{range}}\n", "text", 3, "missing value for range"},
		{"text unknown field", "News", "<p>Hi</p>", "Hello,\n{{.Subscriber.Nmae}}\n", "text", 2, "no field Nmae"},
		{"text too big", "News", "<p>Hi</p>", strings.Repeat("x", templates.MaxTextBytes+1), "text", 0, "the limit is 262144"},
		{"text endless output", "News", "<p>Hi</p>", `{{range 10000}}{{printf "%0300d" 0}}{{end}}`, "text", 0, "renders too much"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := templates.ParseCampaign(tc.subject, tc.html, tc.text)
			var te *templates.TemplateError
			if !errors.As(err, &te) {
				t.Fatalf("got %v, %v; want a *TemplateError", c, err)
			}
			if te.Part != tc.part || te.Line != tc.line || !strings.Contains(te.Reason, tc.reason) {
				t.Errorf("got %s line %d %q, want %s line %d %q", te.Part, te.Line, te.Reason, tc.part, tc.line, tc.reason)
			}
			if !strings.HasPrefix(err.Error(), tc.part+" template") {
				t.Errorf("Error() = %q, want it to name the part", err)
			}
		})
	}
}

// Templates that use the data as documented parse, and render as expected for a
// recipient who has every field and for one who has none.
func TestParseCampaignAccepts(t *testing.T) {
	empty := templates.CampaignData{UnsubscribeURL: "https://u.example/1", PreferencesURL: "https://p.example/1"}
	for _, tc := range []struct {
		name      string
		html      string
		full, nob string // text of the rendered HTML for fixedRecipient and for empty
	}{
		{"fields", "<p>{{.Subscriber.Name}} {{.Subscriber.Email}} {{.Subscriber.Locale}} {{.Campaign.Name}} {{.Campaign.ID}}</p>",
			"Ana Lima ana@example.org en Spring news cmp_01", ""},
		{"attribute", "<p>[{{.Subscriber.Attributes.city}}]</p>", "[Lyon]", "[]"},
		{"missing attribute", "<p>[{{.Subscriber.Attributes.planet}}]</p>", "[]", "[]"},
		{"field of a missing attribute", "<p>[{{.Subscriber.Attributes.address.city}}]</p>", "[]", "[]"},
		{"index", `<p>[{{index .Subscriber.Attributes "city"}}]</p>`, "[Lyon]", "[]"},
		{"default", `<p>Hello {{.Subscriber.Name | default "friend"}} from {{default "nowhere" .Subscriber.Attributes.city}}</p>`,
			"Hello Ana Lima from Lyon", "Hello friend from nowhere"},
		{"upper lower trim", `<p>{{upper .Subscriber.Name}} {{lower .Campaign.Name}} [{{trim "  x "}}] [{{upper .Subscriber.Attributes.planet}}]</p>`,
			"ANA LIMA spring news [x] []", "[x] []"},
		{"if with range", `{{if .Subscriber.Attributes.city}}<p>In {{.Subscriber.Attributes.city}}</p>{{else}}<p>Everywhere</p>{{end}}` +
			`{{with .Subscriber.Attributes.favourites}}<ul>{{range .}}<li>{{.}}</li>{{end}}</ul>{{end}}`,
			"In Lyon\n\n- Market tote\n- Linen apron", "Everywhere"},
		{"define and template", `{{define "hello"}}<p>Hello {{.Name}}</p>{{end}}{{template "hello" .Subscriber}}`, "Hello Ana Lima", "Hello"},
		{"variables", `{{$n := .Subscriber.Name}}{{range $i, $f := .Subscriber.Attributes.favourites}}<p>{{$i}} {{$f}} for {{$n}} of {{$.Campaign.Name}}</p>{{end}}`,
			"0 Market tote for Ana Lima of Spring news\n\n1 Linen apron for Ana Lima of Spring news", ""},
		{"links to data", `<p><a href="{{.UnsubscribeURL}}">Leave</a></p>`, "Leave (https://news.example.org/u/dW5zdWI.c2ln)", "Leave (https://u.example/1)"},
		{"comment", `<p>{{/* a note */}}Hi</p>`, "Hi", "Hi"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := parse(t, "News for {{.Subscriber.Name}}", tc.html, "")
			for _, d := range []struct {
				data templates.CampaignData
				want string
			}{{fixedRecipient, tc.full}, {empty, tc.nob}} {
				r := render(t, c, d.data, templates.Footer{})
				if got := body(r.Text); got != d.want {
					t.Errorf("for %q got text %q, want %q", d.data.Subscriber.Name, got, d.want)
				}
			}
		})
	}
}

// In the subject and text parts as in HTML, a missing attribute prints as nothing.
func TestCampaignMissingAttributes(t *testing.T) {
	c := parse(t, "[{{.Subscriber.Attributes.planet}}] {{.Subscriber.Attributes.city}}", "<p>[{{.Subscriber.Attributes.planet}}]</p>",
		"[{{.Subscriber.Attributes.planet}}] [{{index .Subscriber.Attributes \"planet\"}}] [{{.Subscriber.Attributes.address.city}}] {{.Subscriber.Attributes.city}}")
	r := render(t, c, fixedRecipient, templates.Footer{})
	if r.Subject != "[] Lyon" {
		t.Errorf("subject %q, want %q", r.Subject, "[] Lyon")
	}
	if !strings.Contains(r.HTML, "<p>[]</p>") {
		t.Errorf("HTML lacks <p>[]</p>:\n%s", r.HTML)
	}
	if got, want := body(r.Text), "[] [] [] Lyon"; got != want {
		t.Errorf("text %q, want %q", got, want)
	}
}

func TestCampaignFooter(t *testing.T) {
	withBody := "<!doctype html><html><body><p>Hello</p></body></html>"
	for _, tc := range []struct {
		name, lang, html, text string
		footer                 templates.Footer
		want                   []string // in both parts
		wantHTML, wantText     []string
		not                    []string // in neither
	}{
		{name: "en with body", lang: "en", html: withBody, footer: fixedFooter,
			want:     []string{"You are receiving this email from Acme Shop because you subscribed.", "Acme Shop", "12 rue des Tanneurs", "69001 Lyon, France"},
			wantHTML: []string{`<a href="https://news.example.org/u/dW5zdWI.c2ln" style="color:#6b7580;text-decoration:underline;">Unsubscribe</a>`, `<a href="https://news.example.org/p/cHJlZnM.c2ln" style="color:#6b7580;text-decoration:underline;">Manage your preferences</a>`, "Acme Shop<br>12 rue des Tanneurs<br>69001 Lyon, France"},
			wantText: []string{"\n\n-- \n", "Unsubscribe: https://news.example.org/u/dW5zdWI.c2ln\n", "Manage your preferences: https://news.example.org/p/cHJlZnM.c2ln\n", "Acme Shop\n12 rue des Tanneurs\n69001 Lyon, France\n"}},
		{name: "fr without body", lang: "fr", html: "<p>Bonjour</p>", footer: fixedFooter,
			want:     []string{"Acme Shop vous envoie cet e-mail parce que vous vous êtes abonné.", "12 rue des Tanneurs"},
			wantHTML: []string{">Se désabonner</a>", ">Gérer mes préférences</a>"},
			wantText: []string{"Se désabonner\u00a0: https://news.example.org/u/dW5zdWI.c2ln\n", "Gérer mes préférences\u00a0: https://news.example.org/p/cHJlZnM.c2ln\n"}},
		{name: "fr-CA from the subscriber's locale", lang: "", html: withBody, footer: templates.Footer{},
			want: []string{"Vous recevez cet e-mail parce que vous vous êtes abonné."}, wantText: []string{"Se désabonner\u00a0: "},
			not: []string{"Acme", "<br>"}},
		{name: "unknown language falls back to English", lang: "de", html: withBody, footer: templates.Footer{Company: "Acme Shop"},
			want: []string{"You are receiving this email from Acme Shop because you subscribed."}, wantText: []string{"Unsubscribe: "},
			not: []string{"12 rue"}},
		{name: "with a text part", lang: "en", html: withBody, text: "Hello {{.Subscriber.Name}}.\n\n", footer: fixedFooter,
			wantText: []string{"Hello Ana Lima.\n\n-- \nYou are receiving", "Unsubscribe: https://news.example.org/u/dW5zdWI.c2ln\n"}},
		{name: "template that fakes a footer", lang: "en", html: `<p><a href="{{.UnsubscribeURL}}">Unsubscribe</a></p>`, text: "-- \nbye", footer: fixedFooter,
			wantHTML: []string{`Unsubscribe</a></p>` + "\n<table", ">Manage your preferences</a>"}, wantText: []string{"-- \nbye\n\n-- \nYou are receiving"}},
		{name: "tracking pixel", lang: "en", html: withBody, footer: templates.Footer{TrackingPixelURL: "https://t.example.org/o/1.gif?c=cmp_01&s=9"},
			wantHTML: []string{`<img src="https://t.example.org/o/1.gif?c=cmp_01&amp;s=9" width="1" height="1" alt=""`}},
		{name: "footer URLs given", lang: "en", html: withBody, footer: templates.Footer{UnsubscribeURL: "https://x.example/u", PreferencesURL: "https://x.example/p"},
			want: []string{"https://x.example/u", "https://x.example/p"}, not: []string{"news.example.org"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := parse(t, "News", tc.html, tc.text)
			data := fixedRecipient
			data.Subscriber.Locale = "fr-CA"
			f := tc.footer
			f.Lang = tc.lang
			r := render(t, c, data, f)
			for _, w := range tc.want {
				if !strings.Contains(r.HTML, w) || !strings.Contains(r.Text, w) {
					t.Errorf("want %q in both parts;\nHTML:\n%s\ntext:\n%s", w, r.HTML, r.Text)
				}
			}
			for _, w := range tc.wantHTML {
				if !strings.Contains(r.HTML, w) {
					t.Errorf("want %q in HTML:\n%s", w, r.HTML)
				}
			}
			for _, w := range tc.wantText {
				if !strings.Contains(r.Text, w) {
					t.Errorf("want %q in text:\n%s", w, r.Text)
				}
			}
			for _, w := range tc.not {
				if strings.Contains(r.HTML, w) || strings.Contains(r.Text, w) {
					t.Errorf("do not want %q;\nHTML:\n%s\ntext:\n%s", w, r.HTML, r.Text)
				}
			}
			// Both links always, the footer last in the text, before </body> in HTML.
			for _, u := range []string{f.UnsubscribeURL, f.PreferencesURL} {
				if u == "" {
					continue
				}
				if !strings.Contains(r.HTML, `href="`+u+`"`) || !strings.Contains(r.Text, u+"\n") {
					t.Errorf("footer link %s missing", u)
				}
			}
			if strings.Contains(tc.html, "</body>") && !strings.HasSuffix(r.HTML, "</table>\n</body></html>") &&
				!strings.HasSuffix(r.HTML, "\">\n</body></html>") {
				t.Errorf("footer not right before </body>:\n%s", r.HTML)
			}
			if !strings.HasSuffix(r.Text, "\n") || strings.Count(r.Text, "\n-- \n") < 1 {
				t.Errorf("text does not end with the footer:\n%s", r.Text)
			}
		})
	}
}

func TestCampaignFooterNeedsURLs(t *testing.T) {
	c := parse(t, "News", "<p>Hi</p>", "")
	for _, tc := range []struct {
		name   string
		data   templates.CampaignData
		footer templates.Footer
	}{
		{"none", templates.CampaignData{}, templates.Footer{}},
		{"no preferences", templates.CampaignData{UnsubscribeURL: "https://u.example"}, templates.Footer{}},
		{"no unsubscribe", templates.CampaignData{}, templates.Footer{PreferencesURL: "https://p.example"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := c.Render(tc.data, tc.footer); !errors.Is(err, templates.ErrFooterURL) {
				t.Errorf("got %v, want ErrFooterURL", err)
			}
		})
	}
}

// The footer's URLs and texts are escaped; URLs exactly as html/template writes
// href="{{.}}", unsafe schemes neutralised.
func TestCampaignFooterEscaping(t *testing.T) {
	c := parse(t, "News", "<p>Hi</p>", "")
	unsub, pixel := `https://u.example/x?a=1&b="><script>alert(1)</script>+%41%4`, `https://t.example/o.gif?x=" onerror="alert(1)`
	r := render(t, c, fixedRecipient, templates.Footer{
		UnsubscribeURL:   unsub,
		PreferencesURL:   "javascript:alert(1)",
		Company:          `Bob & "Sons" <Ltd>`,
		PostalAddress:    "1 <b>rue</b>",
		TrackingPixelURL: pixel,
	})
	// asHTMLTemplate is how html/template writes u in a double-quoted attribute: the
	// part of <a href="{{.}}"> between the quotes.
	asHTMLTemplate := func(u string) string {
		var b strings.Builder
		if err := htmltemplate.Must(htmltemplate.New("").Parse(`<a href="{{.}}">`)).Execute(&b, u); err != nil {
			t.Fatal(err)
		}
		return strings.TrimSuffix(strings.TrimPrefix(b.String(), `<a href="`), `">`)
	}
	for _, want := range []string{
		`href="` + asHTMLTemplate(unsub) + `"`,
		`href="#ZgotmplZ"`,
		`from Bob &amp; &#34;Sons&#34; &lt;Ltd&gt; because`,
		`1 &lt;b&gt;rue&lt;/b&gt;`,
		`src="` + asHTMLTemplate(pixel) + `"`,
	} {
		if !strings.Contains(r.HTML, want) {
			t.Errorf("want %s in:\n%s", want, r.HTML)
		}
	}
	if strings.Contains(r.HTML, "<script>") || strings.Contains(r.HTML, "javascript:") || strings.Contains(r.HTML, `" onerror`) {
		t.Errorf("footer HTML not escaped:\n%s", r.HTML)
	}
}

// Data is data: escaped in HTML, never parsed as a template, kept as typed in text.
func TestCampaignInjection(t *testing.T) {
	c := parse(t, "Hello {{.Subscriber.Name}}",
		`<p title="{{.Subscriber.Name}}">Hello {{.Subscriber.Name}}, from {{.Subscriber.Attributes.city}}</p>`+
			`<p><a href="{{.Subscriber.Attributes.site}}">site</a></p><script>var n = {{.Subscriber.Name}};</script>`, "")
	for _, tc := range []struct {
		name, value         string
		notInHTML, wantHTML string
		wantText            string
	}{
		{"action", "{{.UnsubscribeURL}}", "news.example.org/u/dW5zdWI.c2ln\">", "Hello {{.UnsubscribeURL}}, from", "Hello {{.UnsubscribeURL}}, from"},
		{"script", "<script>alert(1)</script>", "<script>alert(1)", "Hello &lt;script&gt;alert(1)&lt;/script&gt;, from", "Hello <script>alert(1)</script>, from"},
		{"attribute break-out", `"><img src=x onerror=alert(1)>`, "<img src=x", `title="&#34;&gt;&lt;img src=x onerror=alert(1)&gt;"`, `Hello "><img src=x onerror=alert(1)>, from`},
		{"script break-out", `</script><script>alert(1)//`, "</script><script>alert", `var n = "\u003c/script\u003e\u003cscript\u003ealert(1)//";`, "Hello </script><script>alert(1)//, from"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d := fixedRecipient
			d.Subscriber.Name = tc.value
			d.Subscriber.Attributes = map[string]any{"city": tc.value, "site": "javascript:alert(1)"}
			r := render(t, c, d, fixedFooter)
			if strings.Contains(r.HTML, tc.notInHTML) || !strings.Contains(r.HTML, tc.wantHTML) {
				t.Errorf("want %s and not %s in HTML:\n%s", tc.wantHTML, tc.notInHTML, r.HTML)
			}
			if !strings.Contains(r.HTML, `href="#ZgotmplZ"`) {
				t.Errorf("javascript: URL from data not neutralised:\n%s", r.HTML)
			}
			if !strings.Contains(r.Text, tc.wantText) {
				t.Errorf("want %q in text:\n%s", tc.wantText, r.Text)
			}
			if r.Subject != "Hello "+tc.value {
				t.Errorf("subject %q, want %q", r.Subject, "Hello "+tc.value)
			}
		})
	}
}

// Data cannot add a header line: control characters become spaces; a subject too
// long is cut on a character boundary.
func TestCampaignSubjectIsOneLine(t *testing.T) {
	c := parse(t, "News for {{.Subscriber.Name}}!", "<p>Hi</p>", "")
	for _, tc := range []struct{ name, want string }{
		{"Ana\r\nBcc: all@example.org", "News for Ana  Bcc: all@example.org!"},
		{"Ana\nX-Spam: no", "News for Ana X-Spam: no!"},
		{"Ana\x00\t\x7f", "News for Ana   !"},
		{strings.Repeat("é", 600), "News for " + strings.Repeat("é", (templates.MaxSubjectBytes-9)/2)},
	} {
		d := fixedRecipient
		d.Subscriber.Name = tc.name
		r := render(t, c, d, fixedFooter)
		if r.Subject != tc.want {
			t.Errorf("name %q: got subject %q, want %q", tc.name, r.Subject, tc.want)
		}
		if len(r.Subject) > templates.MaxSubjectBytes || strings.ContainsAny(r.Subject, "\r\n") {
			t.Errorf("name %q: subject %q is not one short line", tc.name, r.Subject)
		}
	}
}

// The plain text derived from HTML, when the template has no text part.
func TestCampaignTextFromHTML(t *testing.T) {
	for _, tc := range []struct{ name, html, want string }{
		{"paragraphs", "<p>One\n  two</p><p>Three</p>", "One two\n\nThree"},
		{"line breaks", "<p>One<br>two<br><br>three</p>", "One\ntwo\n\nthree"},
		{"headings", "<h1>Title</h1><p>Text</p><h3>Small</h3>", "# Title\n\nText\n\n### Small"},
		{"lists", "<ul><li>one</li><li>two<ul><li>two.a</li></ul></li></ul><ol><li>first</li></ol>", "- one\n- two\n  - two.a\n\n- first"},
		{"links", `<p><a href="https://x.example/a?b=1&amp;c=2">Read</a>, <a href="https://x.example/">https://x.example/</a>, <a href="mailto:hi@x.example">hi@x.example</a>, <a href="mailto:hi@x.example">write</a>, <a href="#top">top</a></p>`,
			"Read (https://x.example/a?b=1&c=2), https://x.example/, hi@x.example, write (hi@x.example), top"},
		{"link around an image", `<a href="https://x.example"><img src="logo.png" alt="Acme"></a> <a href="https://y.example"><img src="spacer.gif" alt=""></a>`, "Acme (https://x.example) https://y.example"},
		{"entities", "<p>Caf&eacute; &amp; cr&egrave;me &lt;3 &nbsp;&mdash; 10&#8239;€ &#123;x}</p>", "Café & crème <3 — 10\u202f€ {x}"},
		{"no tags from head, style, script or comments", "<html><head><title>T</title><style>p{color:red}</style></head><body><!-- note --><script>var x;</script><p>Body</p></body></html>", "Body"},
		{"tables", "<table><tr><td>12 April</td><td>Workshop</td></tr><tr><td>3 May</td><td>Repair café</td></tr></table><p>After</p>", "12 April Workshop\n3 May Repair café\n\nAfter"},
		{"pre", "<pre>a  b\n  c</pre><p>d</p>", "a  b\n  c\n\nd"},
		{"divs", "<div>one</div><div><div>two</div></div>three", "one\ntwo\nthree"},
		{"rule", "<p>a</p><hr><p>b</p>", "a\n\n----------\n\nb"},
		{"braces", `<p>{x} {{"{{"}} }}</p>`, "{x} {{ }}"},
		{"actions in lists", `<ul>{{range .Subscriber.Attributes.favourites}}<li>{{.}}</li>{{end}}</ul><p>{{if .Subscriber.Attributes.city}}In {{.Subscriber.Attributes.city}}{{end}}</p>`, "- Market tote\n- Linen apron\n\nIn Lyon"},
		{"action in a link", `<p><a href="{{.PreferencesURL}}">Preferences</a> <a href="{{.UnsubscribeURL}}">{{.UnsubscribeURL}}</a></p>`, "Preferences (https://news.example.org/p/cHJlZnM.c2ln) https://news.example.org/u/dW5zdWI.c2ln"},
		{"actions in hidden places", `<html><head><title>{{.Campaign.Name}}</title>{{if .Subscriber.Name}}<style>p{color:red}</style>{{end}}</head><body><p class="{{if .Subscriber.Name}}named{{end}}" {{if .Subscriber.Email}}id="e"{{end}}>Hi {{.Subscriber.Name}}</p><!-- {{.Subscriber.Email}} --></body></html>`, "Hi Ana Lima"},
		{"links opened in branches", `<p>{{if .Subscriber.Name}}<a href="https://u.example">{{else}}<a href="https://v.example">{{end}}Link</a></p>`, "Link (https://u.example)"},
		{"nothing", `<img src="x.png" alt="">`, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := parse(t, "News", tc.html, "")
			r := render(t, c, fixedRecipient, fixedFooter)
			if got := body(r.Text); got != tc.want {
				t.Errorf("got\n%q\nwant\n%q", got, tc.want)
			}
			if strings.ContainsAny(r.Text, "\uFDD0\uFDD1\uFDD2\uFDD3\uFDD4\uFDD5") {
				t.Errorf("markers left in %q", r.Text)
			}
		})
	}
}

func TestCampaignCSSInlined(t *testing.T) {
	for _, tc := range []struct {
		name, html string
		want, not  []string
	}{
		{"rule to attribute", `<html><head><style>p{color:red}</style></head><body><p>Hi</p></body></html>`,
			[]string{`<p style="color:red">Hi</p>`}, []string{"<style"}},
		{"own style wins", `<style>p { color: red; margin: 0 }</style><p style="color:blue">Hi</p><p style=color:green>Yo</p>`,
			[]string{`<p style="color:red;margin:0;color:blue">Hi</p>`, `<p style="color:red;margin:0;color:green">Yo</p>`}, nil},
		{"classes and specificity", `<style>.a{color:red} p.a{color:blue} #z{font-weight:bold}</style><p class="a" id="z">x</p><span class="a">y</span>`,
			[]string{`<p style="color:blue;font-weight:bold" class="a" id="z">x</p>`, `<span style="color:red" class="a">y</span>`}, nil},
		{"media queries and pseudo-classes stay", `<html><head><style>a{color:red} a:hover{color:blue} @media (max-width:600px){p{margin:0}}</style></head><body><p><a href="https://x.example">x</a></p></body></html>`,
			[]string{`<a style="color:red" href="https://x.example">`, `<style type="text/css">`, `a:hover`, `@media (max-width:600px)`}, nil},
		{"actions around inlined elements", `<style>td{padding:4px}</style><table>{{range .Subscriber.Attributes.favourites}}<tr><td class="{{.}}">{{.}}</td></tr>{{end}}</table>`,
			[]string{`<tr><td style="padding:4px" class="Market tote">Market tote</td></tr><tr><td style="padding:4px" class="Linen apron">Linen apron</td></tr>`}, []string{"<style"}},
		{"style block with actions is left alone", `<style>p{color:{{.Subscriber.Attributes.colour | default "red"}}}</style><p>Hi</p>`,
			[]string{`<style>p{color:red}</style><p>Hi</p>`}, nil},
		{"conditional style block is left alone", `{{if .Subscriber.Name}}<style>p{color:red}</style>{{end}}<p>Hi</p>`,
			[]string{`<style>p{color:red}</style><p>Hi</p>`}, nil},
		{"print-only block is left alone", `<style media="print">p{color:red}</style><p>Hi</p>`,
			[]string{`<style media="print">p{color:red}</style><p>Hi</p>`}, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := parse(t, "News", tc.html, "")
			r := render(t, c, fixedRecipient, fixedFooter)
			for _, w := range tc.want {
				if !strings.Contains(r.HTML, w) {
					t.Errorf("want %s in:\n%s", w, r.HTML)
				}
			}
			for _, w := range tc.not {
				if strings.Contains(r.HTML, w) {
					t.Errorf("do not want %s in:\n%s", w, r.HTML)
				}
			}
		})
	}
}

// One full newsletter, in English and in French, compared with golden files
// (go test ./templates -update rewrites them).
func TestCampaignNewsletterGolden(t *testing.T) {
	c := parse(t, "{{.Campaign.Name}}: what is new at Acme, {{.Subscriber.Name | default \"friend\"}}", newsletter(t), "")
	for _, lang := range templates.Languages {
		t.Run(lang, func(t *testing.T) {
			d := fixedRecipient
			d.Subscriber.Locale = lang
			f := fixedFooter
			f.TrackingPixelURL = "https://news.example.org/o/cmp_01/sub_42.gif"
			r := render(t, c, d, f)
			golden(t, "campaign."+lang+".subject.golden", r.Subject+"\n")
			golden(t, "campaign."+lang+".html.golden", r.HTML)
			golden(t, "campaign."+lang+".txt.golden", r.Text)
		})
	}
}

func TestCampaignRenderConcurrently(t *testing.T) {
	c := parse(t, "News for {{.Subscriber.Name}}", newsletter(t), "")
	want := render(t, c, fixedRecipient, fixedFooter)
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			for range 20 {
				r, err := c.Render(fixedRecipient, fixedFooter)
				if err != nil || r != want {
					t.Errorf("concurrent render differs: %v", err)
					return
				}
			}
		})
	}
	wg.Wait()
}

// BenchmarkCampaignRender renders the 10 KB sample newsletter for one recipient, with
// the text part derived from the HTML or written by the author.
func BenchmarkCampaignRender(b *testing.B) {
	html := newsletter(b)
	for _, bc := range []struct{ name, text string }{
		{"derived-text", ""},
		{"text-template", "Hello {{.Subscriber.Name}},\n\nOur spring news is out: " + strings.Repeat("the days are getting longer, and the workshop is busy. ", 60)},
	} {
		b.Run(bc.name, func(b *testing.B) {
			c := parse(b, "{{.Campaign.Name}}: what is new at Acme, {{.Subscriber.Name | default \"friend\"}}", html, bc.text)
			f := fixedFooter
			f.TrackingPixelURL = "https://news.example.org/o/cmp_01/sub_42.gif"
			b.ReportAllocs()
			for b.Loop() {
				if _, err := c.Render(fixedRecipient, f); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func BenchmarkParseCampaign(b *testing.B) {
	html := newsletter(b)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := templates.ParseCampaign("{{.Campaign.Name}}", html, ""); err != nil {
			b.Fatal(err)
		}
	}
}
