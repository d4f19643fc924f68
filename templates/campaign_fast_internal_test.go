package templates

import (
	htmltemplate "html/template"
	"math"
	"reflect"
	"strings"
	"testing"
)

// directShapes are campaign templates within what the direct path runs: every context
// whose escaper it knows, every structure it takes, in HTML and in text.
var directShapes = []struct{ name, subject, html, text string }{
	{"contexts",
		`{{.Campaign.Name}}: {{.Subscriber.Name}} {{.Subscriber.Attributes.x}}`,
		`<!doctype html><html lang="{{.Subscriber.Locale | default "en"}}"><head><title>{{.Subscriber.Name}} – {{.Campaign.Name}}</title></head><body>
<p title="{{.Subscriber.Name}}" data-x='{{.Subscriber.Attributes.x}}'>{{.Subscriber.Attributes.x}} {{.Subscriber.Email}}</p>
<a href="{{.Subscriber.Attributes.x}}">whole URL</a> <img src="{{.Subscriber.Attributes.x}}" alt="{{.Subscriber.Attributes.x}}">
<a href="https://e.example/{{.Subscriber.Attributes.x}}/{{.Campaign.ID}}?q={{.Subscriber.Attributes.x}}&amp;r={{.Subscriber.Name}}#{{.Subscriber.Attributes.x}}">parts</a>
<a href="/rel/{{.Subscriber.Attributes.x}}">relative</a> <a href="{{.UnsubscribeURL}}">u</a> <a href='{{.PreferencesURL}}'>p</a>
</body></html>`,
		"Hello {{.Subscriber.Name}} {{.Subscriber.Attributes.x}}\n{{.UnsubscribeURL}}"},
	{"structures",
		`{{with .Subscriber.Attributes.x}}{{.}}{{else}}nothing{{end}} for {{default "friend" .Subscriber.Name}}`,
		`<html><body>
{{if .Subscriber.Attributes.x}}<p>x is {{.Subscriber.Attributes.x}}</p>{{else if .Subscriber.Name}}<p>no x, {{.Subscriber.Name}}</p>{{else}}<p>nobody</p>{{end}}
{{with .Subscriber}}<p>{{.Name | default "friend"}} ({{.Attributes.x | default "none"}}, {{default "nobody" .Attributes.x}})</p>{{end}}
{{with .Subscriber.Attributes.address}}<p>{{.city}}, {{.zip}}</p>{{else with .Subscriber.Attributes.x}}<p>{{.}}</p>{{end}}
<ul>{{range .Subscriber.Attributes.list}}<li title="{{.}}">{{.}}</li>{{else}}<li>none</li>{{end}}</ul>
{{range .Subscriber.Attributes.orders}}<p>{{.item}}: {{.qty}}</p>{{end}}
{{if .Subscriber.Attributes}}has attributes{{end}} {{if .Campaign}}campaign{{end}} {{"literal <b>"}}
</body></html>`,
		`{{if .Subscriber.Attributes.x}}x: {{.Subscriber.Attributes.x}}{{else}}no x{{end}}
{{range .Subscriber.Attributes.list}}- {{.}}
{{else}}(none)
{{end}}{{with .Subscriber.Attributes.address}}{{.city}}{{end}} {{.Subscriber.Attributes.x | default "-"}}`},
	{"bench", `Our spring news, {{.Subscriber.Name}}`,
		`<html><body><h1>Hello {{.Subscriber.Name}},</h1><p>Spring{{with .Subscriber.Attributes.city}} in {{.}}{{end}}.</p><p>{{.Subscriber.Attributes.city}}</p></body></html>`,
		"Hello {{.Subscriber.Name}},\n\nSpring{{with .Subscriber.Attributes.city}} in {{.}}{{end}}."},
	{"derived text", `News`,
		`<html><body><h1>Hello {{.Subscriber.Name | default "there"}}</h1>{{if .Subscriber.Attributes.x}}<p>{{.Subscriber.Attributes.x}}</p>{{end}}<ul>{{range .Subscriber.Attributes.list}}<li>{{.}}</li>{{end}}</ul><p>{ braces }</p></body></html>`,
		""},
}

// hostile are values that each escaper changes, and what html/template's filters
// refuse: every byte, markup, schemes in every case, percent signs, invalid UTF-8.
var hostile = func() []string {
	var all strings.Builder
	for b := 0; b < 256; b++ {
		all.WriteByte(byte(b))
	}
	return []string{"", "Lyon", all.String(), `<script>alert("x")</script>`, `"'&+<>`, "a\x00b",
		"javascript:alert(1)", "JavaScript:x", "https://e.example/a b?c=d&e=f#g", "HTTPS://E.EXAMPLE/", "mailto:a@e.example",
		"httpſ://e.example", "data:text/html,x", "/rel:x", "rel:x/y", "%41%4%zz%%", "%4", "%", "a%2", "100%",
		"\uFDD0\uFFFE", "\xff\xfe\xc3", "🦊 Zoë", "( ) ' [ ] ! * ~", " \t\r\n", "#ZgotmplZ"}
}()

func TestDirectIsTheTemplate(t *testing.T) {
	var data []CampaignData
	person := func(name string, attrs map[string]any) CampaignData {
		return CampaignData{
			Subscriber:     SubscriberData{Name: name, Email: "ana@e.example", Locale: "fr", Attributes: attrs},
			Campaign:       CampaignInfo{ID: "cmp_01", Name: "Spring <news>"},
			UnsubscribeURL: "https://e.example/u/tok?x=1", PreferencesURL: "https://e.example/p/tok",
		}
	}
	for _, h := range hostile {
		data = append(data, person(h, map[string]any{"x": h, "city": h, "list": []any{h, "two"},
			"address": map[string]any{"city": h, "zip": "69001"}, "orders": []any{map[string]any{"item": h, "qty": 2.0}}}))
	}
	// What attributes decoded from JSON hold, and what Go code may put there.
	for _, x := range []any{nil, 0.0, 1.5, 1e21, math.Inf(-1), 42.0, true, false, int(7), int64(-3), []any{}, []string{"a", "<b>"},
		map[string]any{}, map[string]any{"k": "v"}, []any{1.0, nil, true, []any{"x"}}} {
		data = append(data, person("Ana", map[string]any{"x": x, "city": x, "list": x, "address": x, "orders": x}))
	}
	data = append(data, person("", nil), person("Ana", map[string]any{}), CampaignData{},
		person("Ana", map[string]any{"address": map[string]any{"city": nil}, "list": []any{nil}}))
	// The direct path runs the hostile values and the missing ones, in every shape.
	mustRun := func(i int) bool { return i < len(hostile) || len(data)-4 <= i && i < len(data) }
	// What the direct path gives up on (Go's templates render it).
	givesUp := []CampaignData{
		person("Ana", map[string]any{"x": htmltemplate.HTML("<b>trusted</b>"), "city": htmltemplate.URL("javascript:x"), "list": []int{1, 2}}),
		person("Ana", map[string]any{"x": uint8(3), "city": uint8(3), "address": map[string]any{"city": []byte("b")}, "list": map[string]any{"b": 1, "a": 2}}),
		person("Ana", map[string]any{"x": struct{ A string }{"a"}, "city": struct{ A string }{"a"}, "orders": []any{"not an object"}}),
	}

	footer := Footer{Company: "Acme", PostalAddress: "1 rue X\n69001 Lyon"}
	for _, s := range directShapes {
		t.Run(s.name, func(t *testing.T) {
			fast, err := ParseCampaign(s.subject, s.html, s.text)
			if err != nil {
				t.Fatal(err)
			}
			if fast.directSubject == nil || fast.directHTML == nil || fast.directText == nil {
				t.Fatalf("not compiled for the direct path: subject %v, html %v, text %v",
					fast.directSubject != nil, fast.directHTML != nil, fast.directText != nil)
			}
			slow := withoutDirect(fast)
			for i, d := range append(data, givesUp...) {
				want, wantErr := slow.Render(d, footer)
				got, err := fast.Render(d, footer)
				if errString(err) != errString(wantErr) || got != want {
					t.Fatalf("recipient %d (%q, %#v):\ndirect  %q, %v\ntemplate %q, %v", i, d.Subscriber.Name, d.Subscriber.Attributes, got, err, want, wantErr)
				}
				runs := directRuns(fast, d)
				switch {
				case runs && i >= len(data):
					t.Errorf("recipient %d: the direct path ran attributes it should give up on: %#v", i, d.Subscriber.Attributes)
				case !runs && mustRun(i):
					t.Errorf("recipient %d: the direct path gave up on %q, %#v", i, d.Subscriber.Name, d.Subscriber.Attributes)
				}
			}
		})
	}
}

func errString(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}

// withoutDirect is c rendered by Go's templates only.
func withoutDirect(c *Campaign) *Campaign {
	return &Campaign{subject: c.subject, html: c.html, text: c.text, derived: c.derived}
}

// directRuns reports whether the direct path renders every part of c for d.
func directRuns(c *Campaign, d CampaignData) bool {
	var m meter
	m.reset()
	for _, p := range []*direct{c.directSubject, c.directHTML, c.directText} {
		if p == nil || !p.exec(&directRun{m: &m, max: maxRenderedHTML}, &d) {
			return false
		}
	}
	return true
}

// TestDirectGivesUpOnTheRest: parts that use more than the direct path runs are left
// to Go's templates, and render the same.
func TestDirectGivesUpOnTheRest(t *testing.T) {
	for _, html := range []string{
		`<p>{{printf "%s!" .Subscriber.Name}}</p>`,
		`<p>{{if eq .Subscriber.Locale "fr"}}Bonjour{{end}}</p>`,
		`<p>{{$n := .Subscriber.Name}}{{$n}}</p>`,
		`<p>{{range $i, $e := .Subscriber.Attributes.list}}{{$i}}{{end}}</p>`,
		`{{define "x"}}<b>{{.}}</b>{{end}}<p>{{template "x" .Subscriber.Name}}</p>`,
		`<p>{{.Subscriber.Name | upper}}</p>`,
		`<p>{{default .Campaign.Name .Subscriber.Name}}</p>`,
		`<p>{{.Subscriber.Name | default "a" | default "b"}}</p>`,
		`<p onclick="f({{.Subscriber.Name}})">js</p>`,
		`<p style="color: {{.Subscriber.Attributes.x}}">css</p>`,
		`<p>{{len .Subscriber.Name}}</p>`,
	} {
		c, err := ParseCampaign("s", html, "t")
		if err != nil {
			t.Fatalf("%s: %v", html, err)
		}
		if c.directHTML != nil {
			t.Errorf("%s: compiled for the direct path", html)
		}
		d := CampaignData{Subscriber: SubscriberData{Name: `<a&"b'>`, Locale: "fr", Attributes: map[string]any{"x": "red", "list": []any{"a"}}},
			UnsubscribeURL: "https://e.example/u", PreferencesURL: "https://e.example/p"}
		want, wantErr := withoutDirect(c).Render(d, Footer{})
		got, err := c.Render(d, Footer{})
		if got != want || errString(err) != errString(wantErr) {
			t.Errorf("%s: %q, %v; want %q, %v", html, got.HTML, err, want.HTML, wantErr)
		}
	}
}

// TestDirectKeepsTheLimits: the meter and the output limit stop what the direct path
// runs as they stop Go's templates, with the same error.
func TestDirectKeepsTheLimits(t *testing.T) {
	long := make([]any, MaxSteps/2)
	for i := range long {
		long[i] = "x"
	}
	huge := strings.Repeat("<", maxRenderedHTML/3) // 4 bytes each, escaped
	for _, tc := range []struct {
		name string
		html string
		x    any
	}{
		{"steps", `<p>{{range .Subscriber.Attributes.x}}<i>{{.}}</i>{{end}}</p>`, long},
		{"output", `<p>{{.Subscriber.Attributes.x}}</p>`, huge},
	} {
		c, err := ParseCampaign("s", tc.html, "t")
		if err != nil || c.directHTML == nil {
			t.Fatalf("%s: %v, direct %v", tc.name, err, c != nil && c.directHTML != nil)
		}
		d := CampaignData{Subscriber: SubscriberData{Attributes: map[string]any{"x": tc.x}},
			UnsubscribeURL: "https://e.example/u", PreferencesURL: "https://e.example/p"}
		_, wantErr := withoutDirect(c).Render(d, Footer{})
		_, err = c.Render(d, Footer{})
		if err == nil || wantErr == nil || err.Error() != wantErr.Error() {
			t.Errorf("%s: %v; want %v", tc.name, err, wantErr)
		}
	}
}

// FuzzDirectIsTheTemplate renders the contexts shape with direct and template paths.
func FuzzDirectIsTheTemplate(f *testing.F) {
	for _, h := range hostile {
		f.Add(h, h)
	}
	s := directShapes[0]
	fast, err := ParseCampaign(s.subject, s.html, s.text)
	if err != nil {
		f.Fatal(err)
	}
	slow := withoutDirect(fast)
	f.Fuzz(func(t *testing.T, name, x string) {
		d := CampaignData{Subscriber: SubscriberData{Name: name, Attributes: map[string]any{"x": x}},
			UnsubscribeURL: "https://e.example/u", PreferencesURL: "https://e.example/p"}
		want, wantErr := slow.Render(d, Footer{})
		got, err := fast.Render(d, Footer{})
		if got != want || errString(err) != errString(wantErr) {
			t.Fatalf("direct %q, %v\ntemplate %q, %v", got, err, want, wantErr)
		}
	})
}

// TestDirectKnowsEveryField: the direct path reaches every field of CampaignData, and
// finds there what reflection finds; a field added to the data and not to dval.field
// would make every message using it go the slow way.
func TestDirectKnowsEveryField(t *testing.T) {
	d := CampaignData{
		Subscriber:     SubscriberData{Name: "n", Email: "e", Locale: "l", Attributes: map[string]any{"a": "x"}},
		Campaign:       CampaignInfo{ID: "i", Name: "cn"},
		UnsubscribeURL: "u", PreferencesURL: "p",
	}
	var walk func(v dval, rv reflect.Value, path string)
	walk = func(v dval, rv reflect.Value, path string) {
		for i := range rv.NumField() {
			name := rv.Type().Field(i).Name
			got, ok := v.field(name)
			if !ok {
				t.Errorf("the direct path does not know %s.%s", path, name)
				continue
			}
			switch f := rv.Field(i); f.Kind() {
			case reflect.Struct:
				walk(got, f, path+"."+name)
			case reflect.String:
				if got.kind != vString || got.s != f.String() {
					t.Errorf("%s.%s = %q, want %q", path, name, got.s, f.String())
				}
			case reflect.Map:
				if got.kind != vMap || !reflect.DeepEqual(got.m, f.Interface()) {
					t.Errorf("%s.%s is not the attributes", path, name)
				}
			default:
				t.Errorf("%s.%s: a %s the direct path was not written for", path, name, f.Kind())
			}
		}
	}
	walk(dval{kind: vData, data: &d}, reflect.ValueOf(d), "")
}
