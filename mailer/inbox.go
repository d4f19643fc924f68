package mailer

import (
	"bytes"
	"html/template"
	"regexp"
	"strings"
	"time"

	"github.com/gofiber/fiber/v2"
	"golang.org/x/net/html"
)

// Routes mounts the development web inbox on r:
//
//	GET /dev/inbox          HTML list, newest first (refreshes every 5 s)
//	GET /dev/inbox.json     {"items": [{id, from, to, subject, received, text, html, headers}]};
//	                        ?to=ADDR keeps messages with that envelope recipient
//	GET /dev/inbox/:id      one message: headers, text with clickable links, HTML part
//	                        in a sandboxed iframe whose links open in a new tab, its
//	                        open-tracking pixels left out (a look in the dev inbox is
//	                        no open)
//	GET /dev/inbox/:id/raw  the message as received, text/plain
//
// Mail is attacker-controlled input: everything from it is escaped, pages carry a
// strict Content-Security-Policy, and the HTML part runs without scripts, forms or
// same-origin rights. Links between pages are relative, so r may carry a prefix.
func (c *Catcher) Routes(r fiber.Router) {
	r.Get("/dev/inbox", c.handleList)
	r.Get("/dev/inbox.json", c.handleJSON)
	r.Get("/dev/inbox/:id", c.handleMessage)
	r.Get("/dev/inbox/:id/raw", c.handleRaw)
}

// pageCSP forbids scripts, plugins, forms and framing by other sites. The HTML part,
// shown through srcdoc, inherits it: its inline styles and images may load, nothing
// runs. Framing by this origin stays allowed, or the srcdoc frame itself is refused
// (Chromium applies the inherited frame-ancestors and X-Frame-Options to it).
const pageCSP = "default-src 'none'; img-src data: http: https:; style-src 'unsafe-inline'; " +
	"frame-ancestors 'self'; form-action 'none'"

func secure(c *fiber.Ctx, csp string) {
	c.Set("Content-Security-Policy", csp)
	c.Set("X-Frame-Options", "SAMEORIGIN")
	c.Set("Referrer-Policy", "no-referrer")
	c.Set("X-Content-Type-Options", "nosniff")
	c.Set("Cache-Control", "no-store")
}

func (c *Catcher) handleList(fc *fiber.Ctx) error {
	return c.render(fc, fiber.StatusOK, listTmpl, struct {
		Max      int
		Messages []CaughtMessage
	}{c.max, c.Messages()})
}

func (c *Catcher) handleMessage(fc *fiber.Ctx) error {
	m, ok := c.Get(fc.Params("id"))
	if !ok {
		return c.render(fc, fiber.StatusNotFound, notFoundTmpl, nil)
	}
	doc := withoutOpenPixels(m.HTML)
	return c.render(fc, fiber.StatusOK, messageTmpl, messageView{
		CaughtMessage: m,
		NoPixel:       len(doc) != len(m.HTML),
		Fields:        m.fields,
		Segments:      linkify(m.Text),
		// A srcdoc document has no URL of its own: <base target> sends every link to a
		// new tab, which the sandbox lets escape it so the target page works normally.
		SrcDoc: `<!doctype html><meta charset="utf-8"><base target="_blank">` + doc,
	})
}

// withoutOpenPixels returns doc without its <img> elements whose src or srcset leads
// to an open pixel (a path with /t/o/, contract §2), every other byte kept: the dev
// inbox shows a campaign message without counting an open. Click links stay: they
// still lead where they lead, and a click is the developer's own.
func withoutOpenPixels(doc string) string {
	if !strings.Contains(doc, "/t/o/") {
		return doc
	}
	var b strings.Builder
	b.Grow(len(doc))
	z := html.NewTokenizer(strings.NewReader(doc))
	for {
		tt := z.Next()
		if tt == html.ErrorToken {
			return b.String()
		}
		raw := z.Raw()
		if tt == html.StartTagToken || tt == html.SelfClosingTagToken {
			if name, more := z.TagName(); string(name) == "img" && more && pixelAttr(z) {
				continue
			}
		}
		b.Write(raw)
	}
}

// pixelAttr reports whether the tag z is on has a src or srcset with /t/o/ in it.
func pixelAttr(z *html.Tokenizer) bool {
	for more := true; more; {
		var k, v []byte
		k, v, more = z.TagAttr()
		if (string(k) == "src" || string(k) == "srcset") && bytes.Contains(v, []byte("/t/o/")) {
			return true
		}
	}
	return false
}

func (c *Catcher) handleRaw(fc *fiber.Ctx) error {
	m, ok := c.Get(fc.Params("id"))
	secure(fc, "default-src 'none'; sandbox")
	if !ok {
		fc.Set(fiber.HeaderContentType, "text/plain; charset=utf-8")
		return fc.Status(fiber.StatusNotFound).SendString("no such message\n")
	}
	fc.Set(fiber.HeaderContentType, "text/plain; charset=utf-8")
	return fc.Send(m.Raw)
}

// inboxItem is the JSON form of a CaughtMessage.
type inboxItem struct {
	ID       string              `json:"id"`
	From     string              `json:"from"`
	To       []string            `json:"to"`
	Subject  string              `json:"subject"`
	Received time.Time           `json:"received"`
	Text     string              `json:"text"`
	HTML     string              `json:"html"`
	Headers  map[string][]string `json:"headers"`
}

func (c *Catcher) handleJSON(fc *fiber.Ctx) error {
	to := strings.ToLower(fc.Query("to"))
	items := []inboxItem{}
	for _, m := range c.Messages() {
		if to != "" && !containsFold(m.To, to) {
			continue
		}
		items = append(items, inboxItem{
			ID: m.ID, From: m.From, To: m.To, Subject: m.Subject, Received: m.Received,
			Text: m.Text, HTML: m.HTML, Headers: m.Header,
		})
	}
	secure(fc, "default-src 'none'; sandbox")
	return fc.JSON(struct {
		Items []inboxItem `json:"items"`
	}{items})
}

func containsFold(list []string, s string) bool {
	for _, v := range list {
		if strings.EqualFold(v, s) {
			return true
		}
	}
	return false
}

func (c *Catcher) render(fc *fiber.Ctx, status int, t *template.Template, data any) error {
	var b bytes.Buffer
	if err := t.Execute(&b, data); err != nil {
		return err
	}
	secure(fc, pageCSP)
	fc.Set(fiber.HeaderContentType, fiber.MIMETextHTMLCharsetUTF8)
	return fc.Status(status).Send(b.Bytes())
}

type messageView struct {
	CaughtMessage
	Fields   []headerField
	Segments []segment
	SrcDoc   string
	NoPixel  bool // open pixels were left out
}

// segment is a run of plain text, or a link when URL is set.
type segment struct{ Text, URL string }

var urlRE = regexp.MustCompile(`https?://[^\s<>"'` + "`" + `]+`)

// linkify splits text into plain runs and http(s) URLs. Trailing punctuation that
// usually ends a sentence rather than a URL stays outside the link.
func linkify(text string) []segment {
	var out []segment
	last := 0
	for _, loc := range urlRE.FindAllStringIndex(text, -1) {
		start, end := loc[0], loc[1]
		for end > start && strings.ContainsRune(".,;:!?)]}", rune(text[end-1])) {
			end--
		}
		if end-start <= len("https://") {
			continue
		}
		if start > last {
			out = append(out, segment{Text: text[last:start]})
		}
		out = append(out, segment{Text: text[start:end], URL: text[start:end]})
		last = end
	}
	if last < len(text) {
		out = append(out, segment{Text: text[last:]})
	}
	return out
}

var funcs = template.FuncMap{
	"join": strings.Join,
	"when": func(t time.Time) string { return t.Format("2006-01-02 15:04:05") },
	"iso":  func(t time.Time) string { return t.Format(time.RFC3339) },
}

const head = `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="referrer" content="no-referrer">
`

var listTmpl = template.Must(template.New("list").Funcs(funcs).Parse(head + `<meta http-equiv="refresh" content="5">
<title>Dev inbox</title>
</head>
<body>
<h1>Dev inbox</h1>
<p>{{len .Messages}} message(s), newest first; the last {{.Max}} are kept in memory only. <a href="inbox.json">JSON</a></p>
{{if .Messages}}<table>
<thead><tr><th>Received</th><th>To</th><th>Subject</th></tr></thead>
<tbody>
{{range .Messages}}<tr><td><time datetime="{{iso .Received}}">{{when .Received}}</time></td><td>{{join .To ", "}}</td><td><a href="inbox/{{.ID}}">{{or .Subject "(no subject)"}}</a></td></tr>
{{end}}</tbody>
</table>{{else}}<p>No mail yet.</p>{{end}}
</body>
</html>
`))

var messageTmpl = template.Must(template.New("message").Funcs(funcs).Parse(head + `<title>{{or .Subject "(no subject)"}} · Dev inbox</title>
</head>
<body>
<p><a href="../inbox">← Inbox</a> · <a href="{{.ID}}/raw">Raw</a></p>
<h1>{{or .Subject "(no subject)"}}</h1>
<dl>
<dt>Envelope from</dt><dd>{{or .From "<>"}}</dd>
<dt>Envelope to</dt><dd>{{join .To ", "}}</dd>
<dt>Received</dt><dd><time datetime="{{iso .Received}}">{{when .Received}}</time></dd>
{{if .AuthUser}}<dt>AUTH user</dt><dd>{{.AuthUser}}</dd>{{end}}
</dl>
{{if .ParseError}}<p><strong>Could not parse:</strong> {{.ParseError}}</p>{{end}}
{{if .HTML}}<h2>HTML part</h2>
{{if .NoPixel}}<p><small>Its open-tracking pixel is left out: a look here is no open (a click on a link still counts).</small></p>{{end}}
<iframe title="HTML part" sandbox="allow-popups allow-popups-to-escape-sandbox" width="100%" height="600" srcdoc="{{.SrcDoc}}"></iframe>
{{end}}
{{if .Text}}<h2>Text part</h2>
<pre style="white-space:pre-wrap;overflow-wrap:anywhere">{{range .Segments}}{{if .URL}}<a href="{{.URL}}" target="_blank" rel="noopener noreferrer">{{.Text}}</a>{{else}}{{.Text}}{{end}}{{end}}</pre>
{{end}}
<h2>Headers</h2>
<table>
{{range .Fields}}<tr><th>{{.Key}}</th><td>{{.Value}}</td></tr>
{{end}}</table>
</body>
</html>
`))

var notFoundTmpl = template.Must(template.New("404").Parse(head + `<title>Not found · Dev inbox</title>
</head>
<body>
<h1>No such message</h1>
<p>It may have been pushed out by newer ones. <a href="../inbox">Back to the inbox</a></p>
</body>
</html>
`))
