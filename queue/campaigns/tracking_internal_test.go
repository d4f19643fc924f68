package campaigns

// White-box: rewriteLinks is held to golang.org/x/net/html's tokenizer, which it
// imitates for speed.

import (
	"fmt"
	"reflect"
	"strings"
	"testing"
	"time"

	"golang.org/x/net/html"

	"consentmail/preferences"
	"consentmail/preferences/linktoken"
)

func TestRewriteLinks(t *testing.T) {
	mark := func(href string) (string, bool) { return "[" + href + "]", true }
	for _, tc := range []struct{ name, in, want string }{
		{"double quotes", `<p><a href="https://x.org/a">A</a></p>`, `<p><a href="[https://x.org/a]">A</a></p>`},
		{"single quotes", `<a class=b href='https://x.org/'>`, `<a class=b href="[https://x.org/]">`},
		{"unquoted", `<a href=https://x.org/>x`, `<a href="[https://x.org/]">x`},
		{"upper case", `<A HREF = "u" >`, `<A HREF = "[u]" >`},
		{"first href wins", `<a href="1" href="2">`, `<a href="[1]" href="2">`},
		{"first href empty", `<a href href="2">`, `<a href href="2">`},
		{"escaped", `<a href="https://x.org/?a=1&amp;b=2&c=3">`, `<a href="[https://x.org/?a=1&amp;b=2&amp;c=3]">`},
		{"slash before attribute", `<a/href="u">`, `<a/href="[u]">`},
		{"not a", `<abbr href="u"><area href="u"><link href="u">`, `<abbr href="u"><area href="u"><link href="u">`},
		{"end tag", `</a href="u">`, `</a href="u">`},
		{"comment", `<!-- <a href="u"> --><a href="v">`, `<!-- <a href="u"> --><a href="[v]">`},
		{"short comment", `<!--><a href="v">`, `<!--><a href="[v]">`},
		{"style", `<style>a[x="<a href='u'>"]{}</style><a href="v">`, `<style>a[x="<a href='u'>"]{}</style><a href="[v]">`},
		{"title", `<TITLE><a href="u"></title ><a href="v">`, `<TITLE><a href="u"></title ><a href="[v]">`},
		{"quoted >", `<p title=">"><a title='>' href="v">`, `<p title=">"><a title='>' href="[v]">`},
		{"cut tag", `<a href="v"><a href="u"`, `<a href="[v]"><a href="u"`},
		{"cut comment", `<a href="v"><!-- <a href="u">`, `<a href="[v]"><!-- <a href="u">`},
		{"doctype", `<!DOCTYPE html><a href="v">`, `<!DOCTYPE html><a href="[v]">`},
		{"text <", `1 < 2 <a href="v">`, `1 < 2 <a href="[v]">`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := rewriteLinks(tc.in, mark); got != tc.want {
				t.Errorf("rewriteLinks(%q)\n got %q\nwant %q", tc.in, got, tc.want)
			}
		})
	}
	doc := `<p><a href="mailto:a@b">x</a></p>`
	if got := rewriteLinks(doc, func(string) (string, bool) { return "", false }); got != doc {
		t.Errorf("nothing rewritten, got %q", got)
	}
}

func TestLinkTarget(t *testing.T) {
	for _, tc := range []struct {
		href, want string
		ok         bool
	}{
		{"https://x.org/a?b=c#d", "https://x.org/a?b=c#d", true},
		{"HTTP://X.org", "HTTP://X.org", true},
		{"  https://x.org/\n", "https://x.org/", true},
		{"https://x.\norg/a\tb", "https://x.org/ab", true},
		{"https://x.org/a b/é", "https://x.org/a%20b/%C3%A9", true},
		{"mailto:a@b.org", "", false},
		{"javascript:alert(1)", "", false},
		{"/relative", "", false},
		{"//x.org/", "", false},
		{"https://", "", false},
		{"https:x.org", "", false},
		{"ftp://x.org/", "", false},
	} {
		got, ok := linkTarget(tc.href)
		if got != tc.want || ok != tc.ok {
			t.Errorf("linkTarget(%q) = %q, %v; want %q, %v", tc.href, got, ok, tc.want, tc.ok)
		}
		if ok && !isLinkTarget(got) {
			t.Errorf("linkTarget(%q) = %q is not its own target", tc.href, got)
		}
	}
}

// tokens are the tokens of doc as golang.org/x/net/html reads them, with the first
// non-empty href of each <a> replaced by what replace returns for it.
func tokens(doc string, replace func(string) string) []html.Token {
	z := html.NewTokenizer(strings.NewReader(doc))
	var out []html.Token
	for z.Next() != html.ErrorToken {
		tok := z.Token()
		if (tok.Type == html.StartTagToken || tok.Type == html.SelfClosingTagToken) && tok.Data == "a" && replace != nil {
			for i, a := range tok.Attr {
				if a.Namespace == "" && a.Key == "href" {
					if a.Val != "" {
						tok.Attr[i].Val = replace(a.Val)
					}
					break
				}
			}
		}
		out = append(out, tok)
	}
	return out
}

func FuzzRewriteLinks(f *testing.F) {
	for _, s := range []string{
		`<a href="https://x.org/">x</a>`,
		`<A HREF=u>`, `<a href='u' href=v>`, `<a/href=u/>`, `<a =href=u>`, `<a href = "u&amp;v&w=1&copy;&#38;&notin;">`,
		`<a href="&amp">`, `<a href="a&b">`, `<a href="a&=">`, "<a href=\"a\r\nb\rc\x00\">",
		`<!--x--!><a href=u>`, `<!---><a href=u>`, `<!-- --!-><a href=u> -->`, `<!DOCTYPE x><?x ><a href=u>`,
		`</><a href=u>`, `</ x><a href=u>`, `</p a=">"><a href=u>`,
		`<style><a href=u></style x><a href=v>`, `<textarea><a href=u></TEXTAREA/>`, `<xmp><a href=u></xmp`,
		`<plaintext><a href=u>`, `<title/><a href=u></title>`, `<a href=u`, `<a href="u`, `<a href=`, `<a`,
		`<p title='<a href=u>'>`, `<a title=x/><a href=u/>`,
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, doc string) {
		if strings.Contains(strings.ToLower(doc), "script") {
			t.Skip("rewriteLinks reads <script> more simply than the tokenizer")
		}
		var got []string // the non-empty hrefs rewriteLinks saw
		out := rewriteLinks(doc, func(href string) (string, bool) {
			if href == "" {
				return "", false
			}
			got = append(got, href)
			return fmt.Sprintf("https://t.example/%d", len(got)), true
		})
		var want []string
		wantToks := tokens(doc, func(v string) string {
			want = append(want, v)
			return fmt.Sprintf("https://t.example/%d", len(want))
		})
		if !reflect.DeepEqual(got, want) {
			t.Fatalf("hrefs of %q:\n got %q\nwant %q", doc, got, want)
		}
		if gotToks := tokens(out, nil); !reflect.DeepEqual(gotToks, wantToks) {
			t.Fatalf("rewriting %q gave %q:\n got tokens %v\nwant tokens %v", doc, out, gotToks, wantToks)
		}
	})
}

// newsletter is a typical 3 KB message with seven links out and the two footer
// links, which stay as they are.
func newsletter() string {
	var sb strings.Builder
	sb.WriteString(`<!DOCTYPE html><html><head><meta charset="utf-8"><title>News</title><style>p{color:#333}</style></head><body>`)
	for i := 0; sb.Len() < 2700; i++ {
		sb.WriteString(`<table role="presentation" width="100%"><tr><td style="padding:8px;font-family:Arial"><p>Hello there, lots of news this month.`)
		if i%2 == 0 {
			fmt.Fprintf(&sb, ` <a href="https://example.org/article/%d?utm_source=news&amp;utm_medium=email" style="color:#06c">Read more</a>`, i)
		}
		sb.WriteString("</p></td></tr></table>\n")
	}
	sb.WriteString(`<p><a href="https://mail.example.org/u/TOKEN">Unsubscribe</a> · <a href="https://mail.example.org/p/TOKEN">Preferences</a></p></body></html>`)
	return sb.String()
}

// BenchmarkTrackLinks is the cost of tracking links in one message: reading the HTML
// (scan, no link rewritten) and the whole of it (with one signature per link).
//
//	go test ./queue/campaigns -run '^$' -bench TrackLinks
func BenchmarkTrackLinks(b *testing.B) {
	doc := newsletter()
	b.Run("scan", func(b *testing.B) {
		b.SetBytes(int64(len(doc)))
		b.ReportAllocs()
		for b.Loop() {
			rewriteLinks(doc, func(string) (string, bool) { return "", false })
		}
	})
	b.Run("rewrite", func(b *testing.B) {
		w := &Worker{track: linktoken.NewSigner(preferences.DeriveKey([]byte("bench-secret-0123456789abcdef0123456789"), "tracking-links")),
			cfg: WorkerConfig{BaseURL: "https://mail.example.org"}}
		now := time.Now()
		if out := w.trackLinks(doc, "cmp_0123456789abcdef01234567", "sub_0123456789abcdef", now); strings.Count(out, "/t/c/") != 7 {
			b.Fatalf("%d links rewritten, want 7", strings.Count(out, "/t/c/"))
		}
		b.SetBytes(int64(len(doc)))
		b.ReportAllocs()
		for b.Loop() {
			w.trackLinks(doc, "cmp_0123456789abcdef01234567", "sub_0123456789abcdef", now)
		}
	})
}

// The memory of recent clicks keeps only what a burst needs: old clicks are dropped.
func TestRecentClicksForgetOldClicks(t *testing.T) {
	var r recentClicks
	start := time.Unix(1_700_000_000, 0)
	hit := Hit{Click: true, Method: "GET", UserAgent: "Mozilla/5.0 (X11) Chrome/126 Safari/537.36", SinceSent: time.Hour, SincePrevClick: -1}
	for i := range 20000 {
		at := start.Add(time.Duration(i) * time.Millisecond)
		if machine, _ := r.classify(fmt.Sprint("cmp\x00sub", i), "https://a.example/", hit, at); machine {
			t.Fatalf("click %d, the only one of its message, is a machine's", i)
		}
	}
	if n := len(r.m); n > 4096+2000 {
		t.Errorf("%d clicks remembered after 20 s of clicks one per ms, want at most about two seconds' worth", n)
	}
	// Within a burst, and the click before moved.
	at := start.Add(time.Hour)
	if machine, move := r.classify("k", "https://a.example/", hit, at); machine || move {
		t.Fatalf("first click: machine %v, move %v; want a person's", machine, move)
	}
	if machine, move := r.classify("k", "https://b.example/", hit, at.Add(100*time.Millisecond)); !machine || !move {
		t.Errorf("second link 100 ms later: machine %v, move %v; want a machine's, the first moved", machine, move)
	}
	if machine, move := r.classify("k", "https://c.example/", hit, at.Add(200*time.Millisecond)); !machine || move {
		t.Errorf("third link: machine %v, move %v; want a machine's, nothing more to move", machine, move)
	}
}
