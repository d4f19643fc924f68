package templates

import (
	"errors"
	"fmt"
	"html"
	"regexp"
	"strconv"
	"strings"

	"github.com/vanng822/go-premailer/premailer"
	nethtml "golang.org/x/net/html"
	"golang.org/x/net/html/atom"
)

// The HTML of a template is HTML with {{actions}} anywhere, even between table rows,
// where an HTML parser would move them. So before an HTML tool sees a template source,
// each action is replaced by a placeholder, U+FDD0 INDEX U+FDD1, which tokenizers keep
// as text wherever it stands, and put back afterwards.
const (
	phOpen  = '\uFDD0'
	phClose = '\uFDD1'
)

// actionKind says what an action does to the text around it.
type actionKind int

const (
	actionPrint   actionKind = iota // prints something: {{.X}}, {{template "x"}}
	actionOpen                      // {{if}}, {{range}}, {{with}}, {{define}}, {{block}}
	actionClose                     // {{end}}
	actionControl                   // prints nothing but must be kept: {{else}}, {{$x := …}}, {{break}}, comments
)

type action struct {
	start, end int // byte range in the source
	kind       actionKind
}

var (
	keyword = regexp.MustCompile(`^(if|range|with|define|block|end|else|break|continue|template)\b`)
	decl    = regexp.MustCompile(`^\$[\pL\pN_]*\s*(,\s*\$[\pL\pN_]*\s*)?:?=[^=]`)
)

// scanActions finds the actions of a source that text/template has parsed without error.
func scanActions(src string) []action {
	var acts []action
	for i := 0; ; {
		j := strings.Index(src[i:], "{{")
		if j < 0 {
			return acts
		}
		start := i + j
		k := start + 2
		if k+1 < len(src) && src[k] == '-' && isSpace(src[k+1]) {
			k += 2
		}
		end := -1
		if strings.HasPrefix(src[k:], "/*") {
			if c := strings.Index(src[k+2:], "*/"); c >= 0 {
				if e := strings.Index(src[k+2+c:], "}}"); e >= 0 {
					end = k + 2 + c + e + 2
				}
			}
		} else {
			end = actionEnd(src, k)
		}
		if end < 0 { // unreachable for a parsed template
			return acts
		}
		acts = append(acts, action{start: start, end: end, kind: classify(src[start:end])})
		i = end
	}
}

func isSpace(c byte) bool { return c == ' ' || c == '\t' || c == '\r' || c == '\n' }

// actionEnd returns the index after the }} closing the action whose body starts at k,
// skipping quoted strings, raw strings and character constants.
func actionEnd(src string, k int) int {
	for k < len(src) {
		switch c := src[k]; c {
		case '"', '\'':
			k++
			for k < len(src) && src[k] != c {
				if src[k] == '\\' {
					k++
				}
				k++
			}
			k++
		case '`':
			e := strings.IndexByte(src[k+1:], '`')
			if e < 0 {
				return -1
			}
			k += e + 2
		case '}':
			if strings.HasPrefix(src[k:], "}}") {
				return k + 2
			}
			k++
		default:
			k++
		}
	}
	return -1
}

func classify(a string) actionKind {
	body := strings.TrimPrefix(a[2:len(a)-2], "-")
	body = strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(body), "-"))
	if strings.HasPrefix(body, "/*") {
		return actionControl
	}
	switch keyword.FindString(body) {
	case "if", "range", "with", "define", "block":
		return actionOpen
	case "end":
		return actionClose
	case "else", "break", "continue":
		return actionControl
	case "template":
		return actionPrint
	}
	if decl.MatchString(body + " ") {
		return actionControl
	}
	return actionPrint
}

// withPlaceholders returns src with each action replaced by its placeholder.
func withPlaceholders(src string, acts []action) string {
	var b strings.Builder
	b.Grow(len(src))
	last := 0
	for i, a := range acts {
		b.WriteString(src[last:a.start])
		writePlaceholder(&b, i)
		last = a.end
	}
	b.WriteString(src[last:])
	return b.String()
}

func writePlaceholder(b *strings.Builder, i int) {
	b.WriteRune(phOpen)
	b.WriteString(strconv.Itoa(i))
	b.WriteRune(phClose)
}

// eachPlaceholder calls fn with the index and byte range of every placeholder in s.
func eachPlaceholder(s string, fn func(i, start, end int)) {
	for off := 0; ; {
		j := strings.IndexRune(s[off:], phOpen)
		if j < 0 {
			return
		}
		start := off + j
		digits := start + len(string(phOpen))
		k := digits
		for k < len(s) && s[k] >= '0' && s[k] <= '9' {
			k++
		}
		if k > digits && strings.HasPrefix(s[k:], string(phClose)) {
			n, _ := strconv.Atoi(s[digits:k])
			end := k + len(string(phClose))
			fn(n, start, end)
			off = end
		} else {
			off = digits
		}
	}
}

// restore puts the actions of src back in place of the placeholders of s.
func restore(s, src string, acts []action) string {
	var b strings.Builder
	b.Grow(len(s) + len(src)/4)
	last := 0
	eachPlaceholder(s, func(i, start, end int) {
		b.WriteString(s[last:start])
		if i < len(acts) {
			b.WriteString(src[acts[i].start:acts[i].end])
		}
		last = end
	})
	b.WriteString(s[last:])
	return b.String()
}

// inlineCSS moves the rules of the <style> blocks of the template source src into
// style attributes with premailer, and reports whether it changed anything.
//
// Premailer only computes styles: it is given a copy of the document where every
// element has an id and no style attribute. The source is then edited in place, so
// that everything but style attributes and <style> blocks stays byte for byte, actions
// included: an element gets style="RULES;ITS OWN STYLE", its own declarations winning as
// they would have. Blocks inside {{if}}-like actions, blocks with actions and blocks for
// another medium are left where they are; rules premailer cannot inline (media queries,
// :hover) go back in a <style> element where the first block was.
func inlineCSS(src string) (string, bool) {
	acts := scanActions(src)
	w := withPlaceholders(src, acts)
	depthAt := depthFunc(w, acts)

	type tag struct {
		start, end int // byte range of the start tag in w
		id         int
	}
	type block struct{ start, end int }
	var (
		tags     []tag
		blocks   []block // the <style> blocks being inlined
		probe    strings.Builder
		eligible bool
	)
	z := nethtml.NewTokenizer(strings.NewReader(w))
	off := 0
	var style *block    // the <style> block being read
	var styleRaw string // its start tag and rules so far, for the probe
	styleOK := false    // whether it can be inlined
	for {
		tt := z.Next()
		if tt == nethtml.ErrorToken {
			break
		}
		raw := string(z.Raw())
		start := off
		off += len(raw)
		tok := z.Token()
		switch {
		case tt == nethtml.StartTagToken && tok.DataAtom == atom.Style:
			media, hasMedia := attr(tok, "media")
			ignore, _ := attr(tok, "data-premailer")
			style, styleRaw = &block{start: start}, raw
			styleOK = depthAt(start) == 0 && (!hasMedia || strings.EqualFold(strings.TrimSpace(media), "all")) && ignore != "ignore"
		case style != nil && tt == nethtml.TextToken:
			styleRaw += raw
			styleOK = styleOK && !strings.ContainsRune(raw, phOpen)
		case style != nil && tt == nethtml.EndTagToken && tok.DataAtom == atom.Style:
			if styleOK {
				style.end = off
				blocks = append(blocks, *style)
				probe.WriteString(styleRaw + raw)
				eligible = true
			}
			style = nil
		case tt == nethtml.StartTagToken || tt == nethtml.SelfClosingTagToken:
			id := len(tags)
			tags = append(tags, tag{start: start, end: off, id: id})
			attrs := tok.Attr[:0]
			for _, a := range tok.Attr {
				if a.Key != "style" && a.Key != "data-cm-i" {
					attrs = append(attrs, a)
				}
			}
			tok.Attr = append(attrs, nethtml.Attribute{Key: "data-cm-i", Val: strconv.Itoa(id)})
			probe.WriteString(tok.String())
		default:
			probe.WriteString(raw)
		}
	}
	if !eligible {
		return src, false
	}
	styles, leftover, err := runPremailer(probe.String())
	if err != nil || strings.Contains(leftover, "{{") || strings.ContainsRune(leftover, phOpen) {
		return src, false
	}

	var out strings.Builder
	out.Grow(len(w) + len(w)/4)
	last := 0
	bi := 0
	for _, t := range tags {
		for bi < len(blocks) && blocks[bi].start < t.start {
			out.WriteString(w[last:blocks[bi].start])
			if bi == 0 && leftover != "" {
				out.WriteString(`<style type="text/css">` + leftover + `</style>`)
			}
			last = blocks[bi].end
			bi++
		}
		s, ok := styles[t.id]
		if !ok || t.start < last {
			continue
		}
		patched, ok := addStyle(w[t.start:t.end], s)
		if !ok {
			continue
		}
		out.WriteString(w[last:t.start])
		out.WriteString(patched)
		last = t.end
	}
	for ; bi < len(blocks); bi++ {
		out.WriteString(w[last:blocks[bi].start])
		if bi == 0 && leftover != "" {
			out.WriteString(`<style type="text/css">` + leftover + `</style>`)
		}
		last = blocks[bi].end
	}
	out.WriteString(w[last:])
	return restore(out.String(), src, acts), true
}

func attr(t nethtml.Token, key string) (string, bool) {
	for _, a := range t.Attr {
		if a.Key == key {
			return a.Val, true
		}
	}
	return "", false
}

// depthFunc returns how deep in {{if}}-like actions an offset of w is.
func depthFunc(w string, acts []action) func(off int) int {
	type step struct{ off, depth int }
	var steps []step
	d := 0
	eachPlaceholder(w, func(i, start, _ int) {
		if i >= len(acts) {
			return
		}
		switch acts[i].kind {
		case actionOpen:
			d++
		case actionClose:
			d--
		default:
			return
		}
		steps = append(steps, step{start, d})
	})
	return func(off int) int {
		depth := 0
		for _, s := range steps {
			if s.off >= off {
				break
			}
			depth = s.depth
		}
		return depth
	}
}

// runPremailer inlines the probe document and returns the style of each element by
// id, and the rules left over.
func runPremailer(probe string) (_ map[int]string, _ string, err error) {
	defer func() {
		if r := recover(); r != nil { // a selector or rule premailer could not handle
			err = fmt.Errorf("premailer: %v", r)
		}
	}()
	pm, err := premailer.NewPremailerFromString(probe, premailer.NewOptions(premailer.WithCssToAttributes(false)))
	if err != nil {
		return nil, "", err
	}
	out, err := pm.Transform()
	if err != nil {
		return nil, "", err
	}
	doc, err := nethtml.Parse(strings.NewReader(out))
	if err != nil {
		return nil, "", err
	}
	styles := map[int]string{}
	var leftover strings.Builder
	var walk func(n *nethtml.Node)
	walk = func(n *nethtml.Node) {
		if n.Type == nethtml.ElementNode {
			var id, style string
			for _, a := range n.Attr {
				switch a.Key {
				case "data-cm-i":
					id = a.Val
				case "style":
					style = a.Val
				}
			}
			if n.DataAtom == atom.Style && n.FirstChild != nil {
				leftover.WriteString(n.FirstChild.Data)
			}
			if i, err := strconv.Atoi(id); err == nil && strings.TrimSpace(style) != "" {
				styles[i] = style
			}
		}
		for c := n.FirstChild; c != nil; c = c.NextSibling {
			walk(c)
		}
	}
	walk(doc)
	return styles, leftover.String(), nil
}

// addStyle puts the declarations rules first in the style attribute of the raw start
// tag, adding the attribute when there is none.
func addStyle(raw, rules string) (string, bool) {
	rules = strings.TrimSuffix(strings.TrimSpace(strings.NewReplacer("\r", " ", "\n", " ").Replace(rules)), ";")
	if rules == "" || strings.Contains(rules, "{{") || strings.ContainsRune(rules, phOpen) {
		return "", false
	}
	esc := html.EscapeString(rules)
	nameEnd, vs, ve, quoted, found := findStyle(raw)
	if nameEnd < 0 {
		return "", false
	}
	if !found {
		return raw[:nameEnd] + ` style="` + esc + `"` + raw[nameEnd:], true
	}
	own := raw[vs:ve]
	sep := ";"
	if strings.TrimSpace(own) == "" {
		sep = ""
	}
	if quoted {
		return raw[:vs] + esc + sep + own + raw[ve:], true
	}
	if strings.ContainsAny(own, `"`) {
		return "", false
	}
	return raw[:vs] + `"` + esc + sep + own + `"` + raw[ve:], true
}

// findStyle reads a raw start tag as the HTML tokenizer does and returns where its name
// ends and the byte range of the value of its first style attribute.
func findStyle(raw string) (nameEnd, vs, ve int, quoted, found bool) {
	if len(raw) < 2 || raw[0] != '<' {
		return -1, 0, 0, false, false
	}
	i := 1
	for i < len(raw) && !isSpace(raw[i]) && raw[i] != '/' && raw[i] != '>' && raw[i] != '\f' {
		i++
	}
	nameEnd = i
	for i < len(raw) {
		for i < len(raw) && (isSpace(raw[i]) || raw[i] == '/' || raw[i] == '\f') {
			i++
		}
		if i >= len(raw) || raw[i] == '>' {
			break
		}
		ns := i
		i++ // an attribute name may start with =
		for i < len(raw) && !isSpace(raw[i]) && raw[i] != '/' && raw[i] != '>' && raw[i] != '=' && raw[i] != '\f' {
			i++
		}
		name := raw[ns:i]
		for i < len(raw) && isSpace(raw[i]) {
			i++
		}
		if i >= len(raw) || raw[i] != '=' {
			continue
		}
		i++
		for i < len(raw) && isSpace(raw[i]) {
			i++
		}
		var s, e int
		q := false
		if i < len(raw) && (raw[i] == '"' || raw[i] == '\'') {
			c := raw[i]
			s = i + 1
			j := strings.IndexByte(raw[s:], c)
			if j < 0 {
				return -1, 0, 0, false, false
			}
			e = s + j
			i = e + 1
			q = true
		} else {
			s = i
			for i < len(raw) && !isSpace(raw[i]) && raw[i] != '>' {
				i++
			}
			e = i
		}
		if strings.EqualFold(name, "style") {
			return nameEnd, s, e, q, true
		}
	}
	return nameEnd, 0, 0, false, false
}

// checkFooterPlacement checks that a footer inserted into rendered HTML where Render
// inserts it would be a child of <body>, not inside an element the template left open.
func checkFooterPlacement(rendered string) error {
	at := footerIndex([]byte(rendered))
	const probe = `<div id="consentmail-footer-probe"></div>`
	doc, err := nethtml.Parse(strings.NewReader(rendered[:at] + probe + rendered[at:]))
	if err != nil {
		return err
	}
	var found *nethtml.Node
	var walk func(n *nethtml.Node)
	walk = func(n *nethtml.Node) {
		for c := n.FirstChild; c != nil && found == nil; c = c.NextSibling {
			if c.Type == nethtml.ElementNode && c.DataAtom == atom.Div && len(c.Attr) == 1 && c.Attr[0].Val == "consentmail-footer-probe" {
				found = c
				return
			}
			walk(c)
		}
	}
	walk(doc)
	if found == nil {
		return errors.New("the footer could not be placed in the body")
	}
	var open []string
	for p := found.Parent; p != nil && p.DataAtom != atom.Body; p = p.Parent {
		if p.Type == nethtml.ElementNode {
			open = append([]string{"<" + p.Data + ">"}, open...)
		}
	}
	if len(open) > 0 {
		return fmt.Errorf("%s is left open at the end, so the unsubscribe footer would land inside it; close it before </body>", strings.Join(open, " "))
	}
	return nil
}
