package templates

import (
	"fmt"
	"strings"
	"text/template/parse"
)

// The direct path. Go's templates run every action by reflection: each field is looked
// up by name, each function (html/template's escapers, the meter's ticks) is called
// through reflect.Value.Call, and a campaign of a few kilobytes with a handful of
// actions costs tens of microseconds and a hundred allocations per recipient: the
// largest part of the sender's work. Most campaign templates use a small part of the
// language: fields of the recipient, {{if}}, {{with}} and {{range}} over them,
// default, and html/template's HTML and URL escapers. Those are compiled once, from
// the trees Go's templates execute (html/template's already escaped), into a direct
// program (direct), which runs them without reflection.
//
// It is only a shortcut. Anything outside that part, when the template is compiled
// (variables, comparisons, printf, {{template}}, other escapers) or when it runs (an
// attribute of a type it does not know, a typed string, a field of a list, ranging
// over an object), makes it give up,
// and the message is rendered by Go's templates, from the start. What it renders is
// Go's templates' output byte for byte: TestDirectIsTheTemplate holds it to that on
// every template shape it takes and on hostile data, escaper by escaper. The meter
// (campaign_limits.go) is charged as it would be, so limits hold the same.

// dop is what a direct node does.
type dop uint8

const (
	dText  dop = iota // write text
	dPrint            // write the pipeline's value, escaped
	dIf               // list if the pipeline's value is true, else elseList
	dWith             // the same, with dot set to the value
	dRange            // list for each element of a list (dot the element), else elseList
	dTick             // charge the meter n steps
)

// dnode is one node of a direct program.
type dnode struct {
	op             dop
	text           string
	pipe           dpipe
	list, elseList []dnode
	n              int
}

// dpipe is a pipeline the direct path runs: a value (a literal, dot, or a chain of
// fields from dot), optionally default's, then the escapers (or, in text, _cm_text).
type dpipe struct {
	lit      *string  // a string literal, instead of dot and fields
	fields   []string // from dot
	def      *string  // default's literal, if the pipeline has one
	escapers []escaper
	nilText  bool // _cm_text: nil and missing print as nothing
}

// direct is a compiled template part.
type direct struct {
	html bool
	list []dnode
}

// compileDirect compiles tree, or returns nil when it uses what the direct path does
// not run. html says the tree is html/template's, escaped.
func compileDirect(tree *parse.Tree, html bool) *direct {
	if tree == nil || tree.Root == nil {
		return nil
	}
	c := directCompiler{html: html}
	l := c.list(tree.Root)
	if c.failed {
		return nil
	}
	return &direct{html: html, list: l}
}

type directCompiler struct {
	html   bool
	failed bool
}

func (c *directCompiler) list(l *parse.ListNode) []dnode {
	if l == nil || c.failed {
		return nil
	}
	out := make([]dnode, 0, len(l.Nodes))
	for _, n := range l.Nodes {
		switch n := n.(type) {
		case *parse.TextNode:
			out = append(out, dnode{op: dText, text: string(n.Text)})
		case *parse.ActionNode:
			if len(n.Pipe.Decl) > 0 {
				c.failed = true
				return nil
			}
			out = append(out, dnode{op: dPrint, pipe: c.pipe(n.Pipe, true)})
		case *parse.IfNode:
			if w, ok := tickWeight(n); ok {
				out = append(out, dnode{op: dTick, n: w})
				continue
			}
			out = append(out, c.branch(dIf, &n.BranchNode))
		case *parse.WithNode:
			out = append(out, c.branch(dWith, &n.BranchNode))
		case *parse.RangeNode:
			out = append(out, c.branch(dRange, &n.BranchNode))
		default: // {{template}}, {{break}}, {{continue}}, comments
			c.failed = true
		}
		if c.failed {
			return nil
		}
	}
	return out
}

func (c *directCompiler) branch(op dop, b *parse.BranchNode) dnode {
	if len(b.Pipe.Decl) > 0 {
		c.failed = true
		return dnode{}
	}
	return dnode{op: op, pipe: c.pipe(b.Pipe, false), list: c.list(b.List), elseList: c.list(b.ElseList)}
}

// tickWeight recognises the meter's {{if _cm_tick N}}{{end}}.
func tickWeight(n *parse.IfNode) (int, bool) {
	if len(n.Pipe.Cmds) != 1 || len(n.Pipe.Decl) != 0 || n.ElseList != nil || len(n.List.Nodes) != 0 {
		return 0, false
	}
	args := n.Pipe.Cmds[0].Args
	if len(args) != 2 {
		return 0, false
	}
	id, ok := args[0].(*parse.IdentifierNode)
	num, isNum := args[1].(*parse.NumberNode)
	if !ok || id.Ident != "_cm_tick" || !isNum || !num.IsInt {
		return 0, false
	}
	return int(num.Int64), true
}

// pipe compiles p; printing says it is an action's, which may end with escapers (or
// _cm_text), whereas a condition's may not.
func (c *directCompiler) pipe(p *parse.PipeNode, printing bool) dpipe {
	var d dpipe
	cmds := p.Cmds
	if len(cmds) == 0 {
		c.failed = true
		return d
	}
	// The value: V, or default "D" V (then V is its last argument), or V | default "D".
	first := cmds[0].Args
	if len(first) == 3 && ident(first[0]) == "default" {
		d.def = c.literal(first[1])
		first = first[2:]
	}
	if len(first) != 1 {
		c.failed = true
		return d
	}
	switch a := first[0].(type) {
	case *parse.DotNode:
	case *parse.FieldNode:
		d.fields = a.Ident
	case *parse.StringNode:
		d.lit = &a.Text
	default:
		c.failed = true
		return d
	}
	cmds = cmds[1:]
	if d.def == nil && len(cmds) > 0 && len(cmds[0].Args) == 2 && ident(cmds[0].Args[0]) == "default" {
		d.def = c.literal(cmds[0].Args[1])
		cmds = cmds[1:]
	}
	if c.failed {
		return d
	}
	for _, cmd := range cmds {
		if !printing || len(cmd.Args) != 1 {
			c.failed = true
			return d
		}
		name := ident(cmd.Args[0])
		if !c.html {
			if name != "_cm_text" || d.nilText {
				c.failed = true
				return d
			}
			d.nilText = true
			continue
		}
		e, ok := escapers[name]
		if !ok {
			c.failed = true
			return d
		}
		d.escapers = append(d.escapers, e)
	}
	return d
}

// literal is the text of a string literal, the only default the direct path takes.
func (c *directCompiler) literal(n parse.Node) *string {
	s, ok := n.(*parse.StringNode)
	if !ok {
		c.failed = true
		return nil
	}
	return &s.Text
}

func ident(n parse.Node) string {
	if id, ok := n.(*parse.IdentifierNode); ok {
		return id.Ident
	}
	return ""
}

// dkind is the kind of a value the direct path holds.
type dkind uint8

const (
	vMissing  dkind = iota // a map's missing key: Go's templates' invalid value
	vNil                   // an attribute set to null
	vString                // a string
	vData                  // CampaignData
	vSub                   // SubscriberData
	vCampaign              // CampaignInfo
	vScalar                // a number or a boolean, printed by fmt
	vMap                   // map[string]any: the attributes, or an attribute that is an object
	vList                  // []any: an attribute that is a list
	vStrings               // []string: the same, made by Go code
)

// dval is a value of the direct path.
type dval struct {
	kind  dkind
	truth bool // Go's templates' truth of it (isTrue), for scalars
	s     string
	data  *CampaignData
	a     any // a scalar
	m     map[string]any
	l     []any
	ls    []string
}

// valueOf holds v, an attribute or one of its parts; ok is false for what the direct
// path does not handle (typed strings, say, and other types).
func valueOf(v any) (dval, bool) {
	switch v := v.(type) {
	case nil:
		return dval{kind: vNil}, true
	case string:
		return dval{kind: vString, s: v}, true
	case float64: // what JSON numbers decode to
		return dval{kind: vScalar, a: v, truth: v != 0}, true
	case int:
		return dval{kind: vScalar, a: v, truth: v != 0}, true
	case int64:
		return dval{kind: vScalar, a: v, truth: v != 0}, true
	case bool:
		return dval{kind: vScalar, a: v, truth: v}, true
	case map[string]any:
		return dval{kind: vMap, m: v}, true
	case []any:
		return dval{kind: vList, l: v}, true
	case []string:
		return dval{kind: vStrings, ls: v}, true
	}
	return dval{}, false
}

// field is v.name as Go's templates evaluate it; ok is false where the direct path
// gives up (a field of a string, of a list, of nil: errors of Go's templates).
func (v dval) field(name string) (dval, bool) {
	switch v.kind {
	case vData:
		switch name {
		case "Subscriber":
			return dval{kind: vSub, data: v.data}, true
		case "Campaign":
			return dval{kind: vCampaign, data: v.data}, true
		case "UnsubscribeURL":
			return dval{kind: vString, s: v.data.UnsubscribeURL}, true
		case "PreferencesURL":
			return dval{kind: vString, s: v.data.PreferencesURL}, true
		}
	case vSub:
		switch name {
		case "Name":
			return dval{kind: vString, s: v.data.Subscriber.Name}, true
		case "Email":
			return dval{kind: vString, s: v.data.Subscriber.Email}, true
		case "Locale":
			return dval{kind: vString, s: v.data.Subscriber.Locale}, true
		case "Attributes":
			return dval{kind: vMap, m: v.data.Subscriber.Attributes}, true
		}
	case vCampaign:
		switch name {
		case "ID":
			return dval{kind: vString, s: v.data.Campaign.ID}, true
		case "Name":
			return dval{kind: vString, s: v.data.Campaign.Name}, true
		}
	case vMap:
		x, present := v.m[name]
		if !present {
			return dval{kind: vMissing}, true
		}
		return valueOf(x)
	}
	return dval{}, false
}

// isTrue is Go's templates' truth of v: what {{if}} takes, and what default calls
// not empty.
func (v dval) isTrue() bool {
	switch v.kind {
	case vString:
		return v.s != ""
	case vData, vSub, vCampaign:
		return true
	case vScalar:
		return v.truth
	case vMap:
		return len(v.m) > 0
	case vList:
		return len(v.l) > 0
	case vStrings:
		return len(v.ls) > 0
	}
	return false // missing, nil
}

// directRun is one execution of a direct program.
type directRun struct {
	m       *meter
	out     []byte
	max     int
	scratch [2][]byte // for escapers in a chain
}

// exec runs d on data, appending to r.out; false means the direct path gave up (or the
// meter or the output limit stopped it), and the part must be rendered by Go's
// templates, from the start and with the meter as it was.
func (d *direct) exec(r *directRun, data *CampaignData) bool {
	return d.run(r, d.list, dval{kind: vData, data: data}, 0)
}

func (d *direct) run(r *directRun, l []dnode, dot dval, depth int) bool {
	if depth > maxNesting {
		return false
	}
	for i := range l {
		n := &l[i]
		switch n.op {
		case dText:
			r.out = append(r.out, n.text...)
		case dTick:
			if r.m.charge(n.n) != nil {
				return false
			}
		case dPrint:
			v, ok := n.pipe.eval(dot)
			if !ok || !d.print(r, &n.pipe, v) {
				return false
			}
		case dIf, dWith:
			v, ok := n.pipe.eval(dot)
			if !ok {
				return false
			}
			taken := v.isTrue()
			next := dot
			if taken && n.op == dWith {
				next = v
			}
			list := n.list
			if !taken {
				list = n.elseList
			}
			if !d.run(r, list, next, depth+1) {
				return false
			}
		case dRange:
			v, ok := n.pipe.eval(dot)
			if !ok {
				return false
			}
			switch v.kind {
			case vList, vStrings, vMissing, vNil:
			default: // maps range in key order, strings not at all: Go's templates
				return false
			}
			if !v.isTrue() {
				if !d.run(r, n.elseList, dot, depth+1) {
					return false
				}
				continue
			}
			for _, e := range v.l {
				ev, ok := valueOf(e)
				if !ok || !d.run(r, n.list, ev, depth+1) {
					return false
				}
			}
			for _, e := range v.ls {
				if !d.run(r, n.list, dval{kind: vString, s: e}, depth+1) {
					return false
				}
			}
		}
		if len(r.out) > r.max {
			return false
		}
	}
	return true
}

// eval is the value of p with dot.
func (p *dpipe) eval(dot dval) (dval, bool) {
	v := dot
	if p.lit != nil {
		v = dval{kind: vString, s: *p.lit}
	}
	for _, f := range p.fields {
		var ok bool
		if v, ok = v.field(f); !ok {
			return dval{}, false
		}
	}
	if p.def != nil {
		switch v.kind {
		case vData, vSub, vCampaign:
			return dval{}, false // default calls a struct empty when it is all zero
		}
		if !v.isTrue() {
			v = dval{kind: vString, s: *p.def}
		}
	}
	return v, true
}

// print writes v as p prints it: in text as itself (nothing for nil and missing with
// _cm_text), in HTML through p's escapers.
func (d *direct) print(r *directRun, p *dpipe, v dval) bool {
	var s string
	switch v.kind {
	case vString:
		s = v.s
	case vScalar:
		s = fmt.Sprint(v.a)
	case vMissing, vNil:
		if !d.html && !p.nilText {
			return false // "<no value>": the checker adds _cm_text where this may happen
		}
	default:
		return false
	}
	if !d.html || len(p.escapers) == 0 {
		r.out = append(r.out, s...)
		return true
	}
	if len(p.escapers) == 1 {
		r.out = p.escapers[0].str(r.out, s)
		return true
	}
	// A chain: each escaper's output is the next one's input.
	cur := p.escapers[0].str(r.scratch[0][:0], s)
	r.scratch[0] = cur
	last := len(p.escapers) - 1
	for i := 1; i < last; i++ {
		next := p.escapers[i].bytes(r.scratch[i%2][:0], cur)
		r.scratch[i%2], cur = next, next
	}
	r.out = p.escapers[last].bytes(r.out, cur)
	return true
}

// escaper is one of html/template's escapers, for a plain string, appending to dst; it
// takes its input as a string or as bytes (the output of the one before it).
type escaper struct {
	str   func(dst []byte, s string) []byte
	bytes func(dst []byte, s []byte) []byte
}

// escapers are html/template's escapers that the direct path runs, by the names
// html/template's escaped trees call them. For a plain string, the HTML text, the
// attribute and the RCDATA escapers are one: they replace the same seven characters.
var escapers = map[string]escaper{
	"_html_template_htmlescaper":   {appendHTMLEscaped[string], appendHTMLEscaped[[]byte]},
	"_html_template_attrescaper":   {appendHTMLEscaped[string], appendHTMLEscaped[[]byte]},
	"_html_template_rcdataescaper": {appendHTMLEscaped[string], appendHTMLEscaped[[]byte]},
	"_html_template_urlescaper":    {appendURLEscaped[string], appendURLEscaped[[]byte]},
	"_html_template_urlnormalizer": {appendURLNormalized[string], appendURLNormalized[[]byte]},
	"_html_template_urlfilter":     {appendURLFiltered[string], appendURLFiltered[[]byte]},
}

// htmlEscapes are the replacements of html/template's HTML escapers; any other byte
// (the bytes of multi-byte characters and of invalid UTF-8 included) is kept.
var htmlEscapes = [128]string{
	0:    "\uFFFD",
	'"':  "&#34;",
	'&':  "&amp;",
	'\'': "&#39;",
	'+':  "&#43;",
	'<':  "&lt;",
	'>':  "&gt;",
}

func appendHTMLEscaped[T ~string | ~[]byte](dst []byte, s T) []byte {
	from := 0
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c >= 0x80 || htmlEscapes[c] == "" {
			continue
		}
		dst = append(append(dst, s[from:i]...), htmlEscapes[c]...)
		from = i + 1
	}
	return append(dst, s[from:]...)
}

// appendURLEscaped escapes s as a part of a URL's query or fragment: every byte but
// RFC 3986's unreserved characters is percent-encoded (in lower-case hex).
func appendURLEscaped[T ~string | ~[]byte](dst []byte, s T) []byte {
	return appendURLProcessed(dst, s, false)
}

// appendURLNormalized percent-encodes what may not stand in a URL, keeping its
// delimiters (RFC 3986's reserved characters) and its valid percent escapes.
func appendURLNormalized[T ~string | ~[]byte](dst []byte, s T) []byte {
	return appendURLProcessed(dst, s, true)
}

const hexDigits = "0123456789abcdef"

func appendURLProcessed[T ~string | ~[]byte](dst []byte, s T, norm bool) []byte {
	keep := &urlUnreserved
	if norm {
		keep = &urlKept
	}
	from := 0
	for i := 0; i < len(s); i++ {
		c := s[i]
		if keep[c] || norm && c == '%' && i+2 < len(s) && isHexDigit(s[i+1]) && isHexDigit(s[i+2]) {
			continue
		}
		dst = append(append(dst, s[from:i]...), '%', hexDigits[c>>4], hexDigits[c&15])
		from = i + 1
	}
	return append(dst, s[from:]...)
}

// urlUnreserved marks RFC 3986's unreserved characters, which the escaper keeps;
// urlKept adds the reserved ones the normalizer keeps: the gen-delims and sub-delims
// but for the single quote and the parentheses, which it encodes so that a URL may
// stand in single quotes and in CSS's url(...).
var urlUnreserved, urlKept = func() (u, k [256]bool) {
	for c := range 256 {
		u[c] = 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || strings.IndexByte("-._~", byte(c)) >= 0
		k[c] = u[c] || strings.IndexByte("!#$&*+,/:;=?@[]", byte(c)) >= 0
	}
	return u, k
}()

func isHexDigit(c byte) bool {
	return '0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F'
}

// appendURLFiltered is html/template's filter of a URL written where a whole URL
// goes (href="{{.}}"): one whose scheme is other than http, https or mailto becomes
// "#ZgotmplZ", so that a javascript: URL never reaches a link.
func appendURLFiltered[T ~string | ~[]byte](dst []byte, s T) []byte {
	for i := 0; i < len(s); i++ {
		switch s[i] {
		case '/':
			return append(dst, s...) // no scheme: a relative URL
		case ':':
			if !schemeIs(s[:i], "http") && !schemeIs(s[:i], "https") && !schemeIs(s[:i], "mailto") {
				return append(dst, "#ZgotmplZ"...)
			}
			return append(dst, s...)
		}
	}
	return append(dst, s...)
}

// schemeIs reports whether s is scheme in any case, as html/template compares them:
// with Unicode's simple folding, by which "httpſ" (a long s) is https.
func schemeIs[T ~string | ~[]byte](s T, scheme string) bool {
	return strings.EqualFold(string(s), scheme)
}
