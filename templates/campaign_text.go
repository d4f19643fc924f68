package templates

import (
	"bytes"
	htmltemplate "html/template"
	"strings"
	texttemplate "text/template"
	"text/template/parse"

	nethtml "golang.org/x/net/html"
	"golang.org/x/net/html/atom"
)

// The plain-text part of a campaign without one is derived from its HTML: paragraphs
// and headings ("# Title") separated by blank lines, <br> and blocks by line breaks,
// list items as "- item", links as "text (url)", images as their alt text; no tags and
// no entities left.
//
// Converting each recipient's HTML would cost more than rendering it, so the
// conversion runs once, on the template source, whose actions are placeholders: the
// result, actions put back, is a text template rendering the text directly. Layout is
// left as markers (noncharacters, which real text does not use) resolved after
// execution by normalizeText, so that "- item" lines come out right whatever a {{range}}
// repeats. The derived template is kept only if it renders the samples exactly as
// converting the rendered HTML does; else Render converts each recipient's HTML.
const (
	markLine  = "\uFDD2" // at least a line break here
	markPara  = "\uFDD3" // at least a blank line here
	markSpace = "\uFDD4" // a space that is not collapsed (in <pre>)
	markBreak = "\uFDD5" // one more line break (<br>, newlines in <pre>)
)

// deriveText returns the text template derived from the HTML template source src,
// parsed as t, or nil when it does not render the samples as converting t's output does.
func deriveText(src string, t *htmltemplate.Template) *texttemplate.Template {
	acts := scanActions(src)
	conv := convertHTML(withPlaceholders(src, acts), src, acts)
	tsrc := restore(strings.ReplaceAll(conv, "{", `{{"{"}}`), src, acts)
	derived, err := texttemplate.New("text").Funcs(campaignFuncs).Parse(tsrc)
	if err != nil {
		return nil
	}
	if checkTrees("text", derived.Templates(), func(name string) bool { return derived.Lookup(name) != nil }, true) != nil {
		return nil
	}
	if checkCalls("text", derived.Templates()) != nil {
		return nil
	}
	meterTrees(derived.Templates())
	var hm, xm meter
	ht, xt := boundHTML(t, &hm), boundText(derived, &xm)
	samples := append(sampleData[:len(sampleData):len(sampleData)], attributeSample(t))
	for i, d := range samples {
		var h, x bytes.Buffer
		if i == len(samples)-1 && run(ht, &hm, &limitWriter{buf: &h, max: maxRenderedHTML}, d) != nil {
			continue // the attributes are not all strings
		}
		h.Reset()
		var want, got strings.Builder
		if run(ht, &hm, &limitWriter{buf: &h, max: maxRenderedHTML}, d) != nil ||
			run(xt, &xm, &limitWriter{buf: &x, max: maxRenderedText}, d) != nil {
			return nil
		}
		normalizeText(&want, []byte(convertHTML(h.String(), "", nil)))
		normalizeText(&got, x.Bytes())
		if want.String() != got.String() {
			return nil
		}
	}
	return derived
}

// attributeSample is a recipient with every attribute t names set to a string, so
// that the comparison of deriveText also goes into the branches they guard.
func attributeSample(t *htmltemplate.Template) CampaignData {
	d := sampleData[0]
	d.Subscriber.Attributes = map[string]any{}
	walkTrees(t.Templates(), func(_ *parse.Tree, n parse.Node) {
		var id []string
		switch n := n.(type) {
		case *parse.FieldNode:
			id = n.Ident
		case *parse.VariableNode:
			if n.Ident[0] == "$" {
				id = n.Ident[1:]
			}
		}
		if len(id) >= 3 && id[0] == "Subscriber" && id[1] == "Attributes" {
			d.Subscriber.Attributes[id[2]] = "Sample " + id[2]
		}
	})
	return d
}

// convertHTML converts HTML to text with layout markers. When acts is not nil, w is the
// template source src with placeholders for acts: a placeholder in a part that is not shown (an
// attribute, a comment, <head>) is kept all the same unless it prints, so that every
// {{if}} keeps its {{end}}.
func convertHTML(w, src string, acts []action) string {
	c := converter{src: src, acts: acts}
	c.out.Grow(len(w) / 2)
	z := nethtml.NewTokenizer(strings.NewReader(w))
	for {
		tt := z.Next()
		switch tt {
		case nethtml.ErrorToken:
			return c.out.String()
		case nethtml.TextToken:
			if c.hidden() {
				c.keep(z.Raw())
			} else {
				c.text(z.Text())
			}
		case nethtml.StartTagToken, nethtml.SelfClosingTagToken:
			c.start(z, tt == nethtml.SelfClosingTagToken)
		case nethtml.EndTagToken:
			name, _ := z.TagName()
			c.keep(name)
			c.end(atom.Lookup(name))
		case nethtml.CommentToken:
			c.keep(z.Raw())
		}
	}
}

type converter struct {
	out    strings.Builder
	src    string // the template source, when converting one
	acts   []action
	inHead bool
	skip   int // inside <title>, <style>, <script>...
	pre    int
	lists  int
	links  []link
}

type link struct {
	href  string
	start int // where its text starts in out
}

func (c *converter) hidden() bool { return c.inHead || c.skip > 0 }

// keep writes the placeholders of s that must be kept though s is not shown.
func (c *converter) keep(s []byte) {
	if c.acts == nil || !bytes.ContainsRune(s, phOpen) {
		return
	}
	str := string(s)
	eachPlaceholder(str, func(i, start, end int) {
		if i < len(c.acts) && c.acts[i].kind != actionPrint {
			c.out.WriteString(str[start:end])
		}
	})
}

func (c *converter) text(s []byte) {
	if c.pre > 0 {
		for _, r := range string(s) {
			switch r {
			case '\n':
				c.out.WriteString(markBreak)
			case ' ', '\t':
				c.out.WriteString(markSpace)
			case '\r':
			default:
				c.out.WriteRune(r)
			}
		}
		return
	}
	space := false
	for i := 0; i < len(s); i++ {
		if isSpace(s[i]) || s[i] == '\f' {
			space = true
			continue
		}
		if space {
			c.out.WriteByte(' ')
			space = false
		}
		c.out.WriteByte(s[i])
	}
	if space {
		c.out.WriteByte(' ')
	}
}

func (c *converter) start(z *nethtml.Tokenizer, selfClosing bool) {
	name, more := z.TagName()
	a := atom.Lookup(name)
	c.keep(name)
	var href, alt []byte
	// TagAttr copies; rendered HTML only needs the attributes of links and images.
	for more && (c.acts != nil || a == atom.A || a == atom.Img) {
		var key, val []byte
		key, val, more = z.TagAttr()
		switch {
		case a == atom.A && string(key) == "href":
			href = val
		case a == atom.Img && string(key) == "alt":
			alt = val
		default:
			c.keep(key)
			c.keep(val)
		}
	}
	switch a {
	case atom.Head:
		c.inHead = !selfClosing
		return
	case atom.Body:
		c.inHead = false
	case atom.Title, atom.Style, atom.Script, atom.Template, atom.Noscript, atom.Svg, atom.Iframe, atom.Object:
		if !selfClosing {
			c.skip++
		}
	}
	if c.hidden() {
		c.keep(href)
		c.keep(alt)
		return
	}
	switch a {
	case atom.P, atom.Blockquote, atom.Table, atom.Dl:
		c.out.WriteString(markPara)
	case atom.Pre:
		c.out.WriteString(markPara)
		c.pre++
	case atom.H1, atom.H2, atom.H3, atom.H4, atom.H5, atom.H6:
		c.out.WriteString(markPara)
		c.out.WriteString("######"[:a.String()[1]-'0'])
		c.out.WriteByte(' ')
	case atom.Ul, atom.Ol:
		if c.lists == 0 {
			c.out.WriteString(markPara)
		} else {
			c.out.WriteString(markLine)
		}
		c.lists++
	case atom.Li:
		c.out.WriteString(markLine)
		for i := 1; i < c.lists; i++ {
			c.out.WriteString(markSpace + markSpace)
		}
		c.out.WriteString("- ")
	case atom.Div, atom.Tr, atom.Dt, atom.Dd, atom.Section, atom.Article, atom.Header, atom.Footer,
		atom.Center, atom.Address, atom.Figure, atom.Main, atom.Nav, atom.Aside, atom.Form, atom.Fieldset, atom.Caption:
		c.out.WriteString(markLine)
	case atom.Td, atom.Th:
		c.out.WriteByte(' ')
	case atom.Br:
		c.out.WriteString(markBreak)
	case atom.Hr:
		c.out.WriteString(markPara + "----------" + markPara)
	case atom.Img:
		if len(bytes.TrimSpace(alt)) > 0 {
			c.text(alt)
		}
	case atom.A:
		if !selfClosing {
			c.links = append(c.links, link{href: string(href), start: c.out.Len()})
		} else {
			c.keep(href)
		}
	}
}

func (c *converter) end(a atom.Atom) {
	switch a {
	case atom.Head:
		c.inHead = false
		return
	case atom.Title, atom.Style, atom.Script, atom.Template, atom.Noscript, atom.Svg, atom.Iframe, atom.Object:
		if c.skip > 0 {
			c.skip--
		}
		return
	}
	if c.hidden() {
		return
	}
	switch a {
	case atom.P, atom.Blockquote, atom.Table, atom.Dl, atom.H1, atom.H2, atom.H3, atom.H4, atom.H5, atom.H6:
		c.out.WriteString(markPara)
	case atom.Pre:
		c.out.WriteString(markPara)
		if c.pre > 0 {
			c.pre--
		}
	case atom.Ul, atom.Ol:
		if c.lists > 0 {
			c.lists--
		}
		if c.lists == 0 {
			c.out.WriteString(markPara)
		} else {
			c.out.WriteString(markLine)
		}
	case atom.Li, atom.Div, atom.Tr, atom.Dt, atom.Dd, atom.Section, atom.Article, atom.Header, atom.Footer,
		atom.Center, atom.Address, atom.Figure, atom.Main, atom.Nav, atom.Aside, atom.Form, atom.Fieldset, atom.Caption:
		c.out.WriteString(markLine)
	case atom.Td, atom.Th:
		c.out.WriteByte(' ')
	case atom.A:
		if len(c.links) == 0 {
			return
		}
		l := c.links[len(c.links)-1]
		c.links = c.links[:len(c.links)-1]
		c.linkURL(l)
	}
}

// linkURL writes the URL of a link after its text, unless the text is the URL.
func (c *converter) linkURL(l link) {
	href := strings.TrimSpace(l.href)
	lower := strings.ToLower(href)
	if href == "" || strings.HasPrefix(href, "#") || strings.HasPrefix(lower, "javascript:") {
		return
	}
	shown := href
	if strings.HasPrefix(lower, "mailto:") {
		shown = href[len("mailto:"):]
	}
	text, cmpHref, cmpShown := plain(c.out.String()[l.start:]), href, shown
	if c.acts != nil { // compare what the template would print, not placeholder numbers
		text = plain(restore(text, c.src, c.acts))
		cmpHref, cmpShown = restore(href, c.src, c.acts), restore(shown, c.src, c.acts)
	}
	switch {
	case text == "":
		c.out.WriteString(shown)
	case text == cmpHref || text == cmpShown:
	default:
		c.out.WriteString(" (" + shown + ")")
	}
}

// plain is s without markers, its spaces collapsed and trimmed.
func plain(s string) string {
	var b strings.Builder
	normalizeText(&b, []byte(s))
	return strings.Join(strings.Fields(b.String()), " ")
}

// plainByte tells the bytes normalizeText copies as they are: not white space, not
// the first byte of a no-break space or of a marker.
var plainByte = func() (t [256]bool) {
	for c := range t {
		t[c] = c > ' ' && c != 0xC2 && c != 0xEF
	}
	return t
}()

// normalizeText writes s to b, resolving the layout markers of convertHTML: runs of
// white space become one space, dropped at line ends and starts; line breaks asked for
// are written before the next text only, at most two blank lines in a row, none at the
// start or end.
func normalizeText(b *strings.Builder, s []byte) {
	want := 0      // line breaks owed before the next text
	space := false // a collapsible space is owed
	started := false
	before := func() {
		if started {
			if want > 0 {
				b.WriteString("\n\n\n"[:min(want, 3)])
			} else if space {
				b.WriteByte(' ')
			}
		}
		want, space, started = 0, false, true
	}
	for i := 0; i < len(s); {
		c := s[i]
		switch {
		case c <= ' ':
			space = true
			i++
			continue
		case c == 0xC2 && i+1 < len(s) && s[i+1] == 0xA0: // no-break space
			space = true
			i += 2
			continue
		case c == 0xEF && i+2 < len(s) && s[i+1] == 0xB7 && s[i+2] >= 0x92 && s[i+2] <= 0x95:
			switch s[i+2] {
			case 0x92: // markLine
				want = max(want, 1)
			case 0x93: // markPara
				want = max(want, 2)
			case 0x94: // markSpace
				before()
				b.WriteByte(' ')
			case 0x95: // markBreak
				if started {
					want++
				}
			}
			i += 3
			continue
		}
		j := i + 1
		for j < len(s) { // text up to the next special byte; single spaces are text too
			if plainByte[s[j]] {
				j++
			} else if s[j] == ' ' && j+1 < len(s) && plainByte[s[j+1]] {
				j += 2
			} else {
				break
			}
		}
		before()
		b.Write(s[i:j])
		i = j
	}
}
