package templates_test

import (
	"errors"
	"fmt"
	"runtime"
	"strings"
	"testing"

	"consentmail/templates"
)

// allocated is how many bytes fn allocates on the heap (runtime.MemStats, not time).
func allocated(fn func()) uint64 {
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	fn()
	runtime.ReadMemStats(&after)
	return after.TotalAlloc - before.TotalAlloc
}

// maxAlloc is what refusing or stopping one template may allocate at most: the
// limits (values, strings made per execution, output) with room to spare, far below
// what the templates below would take unbounded (gigabytes, or hours of CPU).
const maxAlloc = 64 << 20

// Templates that would pin a core or exhaust memory are refused when they are parsed
// (saved, previewed, sent), naming the line, and refusing them takes bounded memory.
func TestParseCampaignRefusesUnboundedWork(t *testing.T) {
	page := func(line string) string { return "<html>\n<body>\n" + line + "\n</body>\n</html>\n" }
	var chain strings.Builder // 40 templates each calling the next twice: 2⁴⁰ calls
	for i := range 40 {
		fmt.Fprintf(&chain, `{{define "t%d"}}{{template "t%d" .}}{{template "t%d" .}}{{end}}`, i, i+1, i+1)
	}
	chain.WriteString(`{{define "t40"}}{{end}}`)
	for _, tc := range []struct {
		name, html, text string
		part             string
		line             int
		reason           string
	}{
		{"three nested ranges of 10000: 10¹² iterations", page("{{range 10000}}{{range 10000}}{{range 10000}}{{end}}{{end}}{{end}}"), "",
			"html", 3, "steps of work"},
		{"nested ranges in the text part", page("<p>Hi</p>"), "Hi\n{{range 10000}}{{range 10000}}{{range 10000}}{{end}}{{end}}{{end}}",
			"text", 2, "steps of work"},
		{"a string doubled in a loop", page(`{{$s := "xx"}}{{range 24}}{{$s = printf "%s%s" $s $s}}{{end}}<p>{{len $s}}</p>`), "",
			"html", 3, "printf would make a value"},
		{"a string doubled by print in the text part", page("<p>Hi</p>"), "{{$s := \"xx\"}}\n{{range 24}}{{$s = print $s $s}}{{end}}{{len $s}}",
			"text", 2, "print would make a value"},
		{"a huge printf width", page(`<p>{{printf "%0100000000d" 0}}</p>`), "", "html", 3, "width 100000000 is over 10000"},
		{"template calls that fan out", chain.String() + page(`{{template "t0" .}}`), "", "html", 0, "steps of work"},
		{"a template calling itself", page(`{{define "a"}}{{template "b" .}}{{end}}{{define "b"}}{{template "a" .}}{{end}}{{template "a" .}}`), "",
			"html", 3, "templates may not recurse"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var err error
			n := allocated(func() { _, err = templates.ParseCampaign("News", tc.html, tc.text) })
			var te *templates.TemplateError
			if !errors.As(err, &te) {
				t.Fatalf("got %v, want a *TemplateError", err)
			}
			// On a machine far slower than expected, the time limit may come first.
			reasonOK := strings.Contains(te.Reason, tc.reason) || tc.reason == "steps of work" && strings.Contains(te.Reason, "runs longer than")
			if te.Part != tc.part || (tc.line != 0 && te.Line != tc.line) || !reasonOK {
				t.Errorf("got %s line %d %q, want %s line %d %q", te.Part, te.Line, te.Reason, tc.part, tc.line, tc.reason)
			}
			if n > maxAlloc {
				t.Errorf("refusing it allocated %d MiB, want at most %d MiB", n>>20, maxAlloc>>20)
			}
		})
	}
}

// A template that passes the checks on sample data but is unbounded on one
// recipient's data fails that recipient's render, fast and in bounded memory, with
// an error wrapping ErrLimit; the same template still renders for the others.
func TestRenderStopsUnboundedWork(t *testing.T) {
	items := make([]any, 10000)
	for i := range items {
		items[i] = "item"
	}
	for _, tc := range []struct{ name, html, text string }{
		{"nested ranges over an attribute", `<p>{{range .Subscriber.Attributes.items}}{{range $.Subscriber.Attributes.items}}` +
			`{{range $.Subscriber.Attributes.items}}{{$x := 1}}{{end}}{{end}}{{end}}</p>`, ""},
		{"a string doubled once per item", `<p>{{$s := "xx"}}{{range .Subscriber.Attributes.items}}{{$s = printf "%s%s" $s $s}}{{end}}{{len $s}}</p>`, ""},
		{"the text part", `<p>Hi</p>`, `{{range .Subscriber.Attributes.items}}{{range $.Subscriber.Attributes.items}}` +
			`{{range $.Subscriber.Attributes.items}}{{end}}{{end}}{{end}}`},
		{"the subject", `<p>Hi</p>`, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			subject := "News"
			if tc.name == "the subject" {
				subject = `{{range .Subscriber.Attributes.items}}{{range $.Subscriber.Attributes.items}}{{range $.Subscriber.Attributes.items}}{{end}}{{end}}{{end}}News`
			}
			c := parse(t, subject, tc.html, tc.text)
			bad := fixedRecipient
			bad.Subscriber.Attributes = map[string]any{"items": items}
			var err error
			n := allocated(func() { _, err = c.Render(bad, templates.Footer{}) })
			if !errors.Is(err, templates.ErrLimit) {
				t.Fatalf("Render = %v, want an error wrapping ErrLimit", err)
			}
			if n > maxAlloc {
				t.Errorf("stopping it allocated %d MiB, want at most %d MiB", n>>20, maxAlloc>>20)
			}
			r := render(t, c, fixedRecipient, templates.Footer{})
			if !strings.Contains(r.Text, "Unsubscribe") {
				t.Errorf("another recipient's render lacks its footer:\n%s", r.Text)
			}
		})
	}
}

// The functions that make strings still do what Go's built-ins do.
func TestCampaignBoundedFuncs(t *testing.T) {
	c := parse(t, `{{printf "%s-%03d" "News" 7}} {{print "a" 1}}`,
		`<p>{{printf "%q" .Subscriber.Name}} {{html "<b>"}} {{urlquery "a b"}} {{js "'"}} {{upper .Subscriber.Attributes.city}} {{println "x"}}</p>`,
		`{{printf "%[1]s %[1]s" .Subscriber.Name}} {{html "<b>"}} {{.Subscriber.Name | lower}} {{len (printf "%5000s" "x")}}`)
	r := render(t, c, fixedRecipient, templates.Footer{})
	if r.Subject != "News-007 a1" {
		t.Errorf("subject %q, want %q", r.Subject, "News-007 a1")
	}
	for _, want := range []string{`&#34;Ana Lima&#34;`, `&lt;b&gt;`, `a&#43;b`, `\&#39;`, `LYON`, "x\n"} {
		if !strings.Contains(r.HTML, want) {
			t.Errorf("HTML lacks %q:\n%s", want, r.HTML)
		}
	}
	if got, want := body(r.Text), "Ana Lima Ana Lima &lt;b&gt; ana lima 5000"; got != want {
		t.Errorf("text %q, want %q", got, want)
	}
}

// BenchmarkRenderLimit measures how long a render stopped by the step limit takes.
func BenchmarkRenderLimit(b *testing.B) {
	bad, err := templates.ParseCampaign("News", "<p>{{range .Subscriber.Attributes.n}}{{range $.Subscriber.Attributes.n}}{{end}}{{end}}</p>", "")
	if err != nil {
		b.Fatal(err)
	}
	items := make([]any, 10000)
	d := fixedRecipient
	d.Subscriber.Attributes = map[string]any{"n": items}
	for b.Loop() {
		if _, err := bad.Render(d, templates.Footer{}); !errors.Is(err, templates.ErrLimit) {
			b.Fatal(err)
		}
	}
}
