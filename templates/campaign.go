package templates

import (
	"bytes"
	"errors"
	"fmt"
	htmltemplate "html/template"
	"reflect"
	"regexp"
	"strconv"
	"strings"
	"sync"
	texttemplate "text/template"
	"text/template/parse"
	"unicode/utf8"
)

// Campaign templates are written by marketers, checked once when they are saved or
// previewed, and rendered once per recipient. Everything that can be found wrong with
// a template is found by ParseCampaign, so that sending never meets a template error.

// Size limits of the sources given to ParseCampaign. The subject limit is the longest
// line RFC 5322 allows, and also applies to the rendered subject.
const (
	MaxSubjectBytes = 998
	MaxHTMLBytes    = 512 << 10
	MaxTextBytes    = 256 << 10
)

// What one execution may write, so that a loop in a template cannot exhaust memory.
const (
	maxRenderedSubject = 64 << 10 // then cut to MaxSubjectBytes
	maxRenderedHTML    = 4 << 20
	maxRenderedText    = 2 << 20
)

// CampaignData is what campaign templates see as dot:
//
//	{{.Subscriber.Name}} {{.Subscriber.Email}} {{.Subscriber.Locale}}
//	{{.Subscriber.Attributes.city}}   (empty when the subscriber has no such attribute)
//	{{.Campaign.Name}} {{.Campaign.ID}} {{.UnsubscribeURL}} {{.PreferencesURL}}
//
// A misspelled field (.Subscriber.Nmae) is a TemplateError from ParseCampaign, whereas
// any attribute name is accepted, because attributes differ from subscriber to subscriber.
type CampaignData struct {
	Subscriber     SubscriberData
	Campaign       CampaignInfo
	UnsubscribeURL string
	PreferencesURL string
}

// SubscriberData is the recipient as templates see it.
type SubscriberData struct {
	Name   string
	Email  string
	Locale string
	// Attributes are the subscriber's custom fields. A missing key renders as nothing;
	// keys that are not identifiers are reached with {{index .Subscriber.Attributes "first-name"}}.
	Attributes map[string]any
}

// CampaignInfo is the campaign as templates see it.
type CampaignInfo struct {
	ID   string
	Name string
}

// TemplateError is a problem in one part of a campaign template, found when it is
// parsed: a syntax error, or an error met by executing the template against sample
// data (unknown field or function, undefined template, wrong types), or a size limit.
type TemplateError struct {
	Part   string // "subject", "html" or "text"
	Line   int    // 1-based line in that part's source; 0 when the problem is not on one line
	Reason string // for a person to read
}

func (e *TemplateError) Error() string {
	if e.Line > 0 {
		return fmt.Sprintf("%s template, line %d: %s", e.Part, e.Line, e.Reason)
	}
	return fmt.Sprintf("%s template: %s", e.Part, e.Reason)
}

// ErrFooterURL is returned by Render when neither the footer nor the data give an
// unsubscribe URL and a preferences URL: a campaign message is never sent without them.
var ErrFooterURL = errors.New("templates: campaign footer needs an unsubscribe URL and a preferences URL")

// Campaign is a campaign template made by ParseCampaign, its <style> rules inlined and
// its plain text derived. It is safe for concurrent use.
type Campaign struct {
	// The parsed parts, never executed themselves: each execution uses clones bound to
	// a meter (a runner).
	subject *texttemplate.Template
	html    *htmltemplate.Template
	text    *texttemplate.Template // the author's plain-text part; nil when none was given
	derived *texttemplate.Template // else the plain text derived from html, nil when it could not be
	pool    runnerPool

	// The parts compiled for the direct path (campaign_fast.go), nil where a part uses
	// what it does not run.
	directSubject, directHTML, directText *direct
}

// Rendered is one recipient's message.
type Rendered struct {
	Subject string // one line, at most MaxSubjectBytes bytes
	HTML    string
	Text    string
}

// campaignFuncs are the only functions templates may call besides Go's built-ins, of
// which call is refused, and print, printf, println, html, js and urlquery are
// replaced by versions that bound what they make; ParseCampaign documents them. These
// are bound to no meter: templates are parsed with them, and executed only as clones
// bound to a meter of their own (see campaign_limits.go).
var campaignFuncs = unbound.funcs()

func isEmpty(v any) bool {
	if v == nil {
		return true
	}
	rv := reflect.ValueOf(v)
	switch rv.Kind() {
	case reflect.Array, reflect.Map, reflect.Slice, reflect.String:
		return rv.Len() == 0
	case reflect.Pointer, reflect.Interface:
		return rv.IsNil()
	}
	return rv.IsZero()
}

func toString(v any) string {
	switch v := v.(type) {
	case nil:
		return ""
	case string:
		return v
	}
	return fmt.Sprint(v)
}

// sampleData are what templates are tried with when parsed: one recipient with every
// field set and no attributes, one with nothing set, so that branches on emptiness are
// tried both ways.
var sampleData = []CampaignData{
	{
		Subscriber:     SubscriberData{Name: "Ana Sample", Email: "ana@example.org", Locale: "en", Attributes: map[string]any{}},
		Campaign:       CampaignInfo{ID: "sample", Name: "Sample campaign"},
		UnsubscribeURL: "https://example.org/unsubscribe/sample",
		PreferencesURL: "https://example.org/preferences/sample",
	},
	{},
}

// ParseCampaign parses and checks a campaign template: subject (text/template), HTML
// body (html/template, so every value is escaped for where it lands) and optional
// plain-text body (text/template; when empty, the plain text is derived from the HTML).
//
// Besides Go's template built-ins (call excepted), templates may use:
//
//	default D V          V, or D when V is empty (missing, "", 0, false, nil, empty list)
//	upper V, lower V     V in upper or lower case ("" for a missing attribute)
//	trim V               V without surrounding white space
//
// {{template "name"}} reaches only templates defined in the same part; nothing is read
// from files.
//
// Any problem is returned as a *TemplateError naming the part and line: syntax errors,
// sizes over the limits, calls to call or to undefined functions and templates, fields
// that CampaignData does not have (also in branches not taken), errors met by executing
// each part against sample data, a subject that renders on several lines, and HTML that
// leaves an element open at its end, so that the footer would land inside it.
//
// The rules of the HTML's <style> blocks are inlined into style attributes here, once,
// except blocks inside {{if}} and the like, blocks with template actions, and rules
// that cannot be inlined (media queries, :hover), which stay in a <style> element.
//
// # Caveats
//
// html/template removes HTML comments, Outlook's <!--[if mso]> included. Checks by
// execution only reach the branches the samples take (a recipient with name, email and
// URLs but no attributes, and an empty one); the static checks cover fields in all
// branches, but not, say, an attribute compared with a number in a branch not taken.
// # Limits
//
// No template can take the service down: every execution, from the trial runs here
// to each Render, is bounded in work (MaxSteps: range iterations and template calls
// charged by the size of their bodies, strings made by their length), in the
// length of every string a function makes (MaxValueBytes; printf widths and
// precisions over 10000, or given by *, are refused), in output (a few MiB) and in
// nesting; templates may not call themselves. A template that goes over a limit on
// the sample data is refused here, naming the line; one that goes over on some
// recipient's data fails that Render with an error wrapping ErrLimit. Ranges over
// literal numbers are capped at 10000. How: see campaign_limits.go.
func ParseCampaign(subject, html, text string) (*Campaign, error) {
	for _, p := range []struct {
		part, src string
		max       int
	}{{"subject", subject, MaxSubjectBytes}, {"html", html, MaxHTMLBytes}, {"text", text, MaxTextBytes}} {
		if len(p.src) > p.max {
			return nil, &TemplateError{Part: p.part, Reason: fmt.Sprintf("is %d bytes long; the limit is %d", len(p.src), p.max)}
		}
	}
	if strings.ContainsRune(html, phOpen) || strings.ContainsRune(html, phClose) {
		return nil, &TemplateError{Part: "html", Reason: "contains the Unicode noncharacter U+FDD0 or U+FDD1"}
	}
	if strings.TrimSpace(subject) == "" {
		return nil, &TemplateError{Part: "subject", Reason: "is empty"}
	}
	if strings.TrimSpace(html) == "" {
		return nil, &TemplateError{Part: "html", Reason: "is empty"}
	}
	c := &Campaign{}
	var err error
	if c.subject, err = parseSubject(subject); err != nil {
		return nil, err
	}
	if c.html, err = parseCampaignHTML(html); err != nil {
		return nil, err
	}
	htmlSrc := html
	if inlined, ok := inlineCSS(html); ok {
		// The inlined source was checked as the author's was; should the inliner have
		// broken something all the same, the message goes out with its <style> blocks.
		if t, err := parseCampaignHTML(inlined); err == nil {
			c.html, htmlSrc = t, inlined
		}
	}
	var out bytes.Buffer
	var m meter
	escaped := boundHTML(c.html, &m)
	if err := run(escaped, &m, &limitWriter{buf: &out, max: maxRenderedHTML}, sampleData[0]); err != nil {
		return nil, templateError("html", err)
	}
	c.directHTML = compileDirect(escaped.Tree, true) // html/template escaped it as it ran
	if err := checkFooterPlacement(out.String()); err != nil {
		return nil, &TemplateError{Part: "html", Reason: err.Error()}
	}
	if strings.TrimSpace(text) != "" {
		if c.text, err = parseCampaignText("text", text, maxRenderedText); err != nil {
			return nil, err
		}
	} else {
		c.derived = deriveText(htmlSrc, c.html)
	}
	c.directSubject = compileDirect(c.subject.Tree, false)
	switch {
	case c.text != nil:
		c.directText = compileDirect(c.text.Tree, false)
	case c.derived != nil:
		c.directText = compileDirect(c.derived.Tree, false)
	}
	return c, nil
}

func parseSubject(src string) (*texttemplate.Template, error) {
	t, err := parseCampaignText("subject", src, maxRenderedSubject)
	if err != nil {
		return nil, err
	}
	var found *TemplateError
	walkTrees(t.Templates(), func(tr *parse.Tree, n parse.Node) {
		if tn, ok := n.(*parse.TextNode); ok && found == nil && bytes.ContainsAny(tn.Text, "\r\n") {
			found = &TemplateError{Part: "subject", Line: nodeLine(tr, n), Reason: "the subject must be one line"}
		}
	})
	if found != nil {
		return nil, found
	}
	var m meter
	bound := boundText(t, &m)
	for _, d := range sampleData {
		var b bytes.Buffer
		if err := run(bound, &m, &limitWriter{buf: &b, max: maxRenderedSubject}, d); err != nil {
			return nil, templateError("subject", err)
		}
		if bytes.ContainsAny(b.Bytes(), "\r\n") {
			return nil, &TemplateError{Part: "subject", Reason: "renders on several lines; the subject must be one line"}
		}
		if b.Len() > MaxSubjectBytes {
			return nil, &TemplateError{Part: "subject", Reason: fmt.Sprintf("renders %d bytes; the limit is %d", b.Len(), MaxSubjectBytes)}
		}
	}
	return t, nil
}

// parseCampaignText parses and checks a text/template part. Every printing action then
// ends with _cm_text, so that a missing attribute prints as nothing.
func parseCampaignText(part, src string, limit int) (*texttemplate.Template, error) {
	t, err := texttemplate.New(part).Funcs(campaignFuncs).Parse(src)
	if err != nil {
		return nil, templateError(part, err)
	}
	if err := checkTrees(part, t.Templates(), func(name string) bool { return t.Lookup(name) != nil }, true); err != nil {
		return nil, err
	}
	if err := checkCalls(part, t.Templates()); err != nil {
		return nil, err
	}
	meterTrees(t.Templates())
	var m meter
	if err := tryTemplate(part, boundText(t, &m), &m, limit); err != nil {
		return nil, err
	}
	return t, nil
}

func parseCampaignHTML(src string) (*htmltemplate.Template, error) {
	t, err := htmltemplate.New("html").Funcs(campaignFuncs).Parse(src)
	if err != nil {
		return nil, templateError("html", err)
	}
	trees := t.Templates()
	err = checkTrees("html", trees, func(name string) bool { return t.Lookup(name) != nil && t.Lookup(name).Tree != nil }, false)
	if err != nil {
		return nil, err
	}
	if err := checkCalls("html", trees); err != nil {
		return nil, err
	}
	meterTrees(trees)
	var m meter
	if err := tryTemplate("html", boundHTML(t, &m), &m, maxRenderedHTML); err != nil {
		return nil, err
	}
	return t, nil
}

// tryTemplate executes t, bound to m, against every sample.
func tryTemplate(part string, t executer, m *meter, limit int) error {
	for _, d := range sampleData {
		w := limitWriter{buf: new(bytes.Buffer), max: limit}
		if err := run(t, m, &w, d); err != nil {
			return templateError(part, err)
		}
	}
	return nil
}

type limitWriter struct {
	buf *bytes.Buffer
	max int
}

var errTooLong = fmt.Errorf("%w: writes too much", ErrLimit)

func (w *limitWriter) Write(p []byte) (int, error) {
	if w.buf.Len()+len(p) > w.max {
		return 0, errTooLong
	}
	return w.buf.Write(p)
}

// Error messages of text/template: "template: NAME:LINE[:COL]: [executing "NAME" at <X>: ]REASON".
var (
	errLine   = regexp.MustCompile(`(?s)^template: [^:]*:(\d+):(?:\d+:)? ?(.*)$`)
	execAt    = regexp.MustCompile(`^executing "[^"]*" at `)
	typeNames = strings.NewReplacer("in type templates.CampaignData", "in the campaign data",
		"in type templates.SubscriberData", "in .Subscriber", "in type templates.CampaignInfo", "in .Campaign")
)

// templateError turns an error of text/template or html/template into a TemplateError.
func templateError(part string, err error) error {
	if errors.Is(err, errTooLong) {
		return &TemplateError{Part: part, Reason: "renders too much text (a loop that does not end?)"}
	}
	if errors.Is(err, ErrLimit) {
		line := 0
		if m := errLine.FindStringSubmatch(err.Error()); m != nil {
			line, _ = strconv.Atoi(m[1])
		}
		_, reason, _ := strings.Cut(err.Error(), ErrLimit.Error()+": ")
		if reason == "" {
			reason = err.Error()
		}
		return &TemplateError{Part: part, Line: line, Reason: reason}
	}
	var he *htmltemplate.Error
	if errors.As(err, &he) {
		reason := he.Description
		if he.ErrorCode == htmltemplate.ErrEndContext {
			reason = "ends inside a tag, an attribute value, a comment, or a <script> or <style> element; close it"
		}
		return &TemplateError{Part: part, Line: he.Line, Reason: typeNames.Replace(reason)}
	}
	msg := err.Error()
	if m := errLine.FindStringSubmatch(msg); m != nil {
		line, _ := strconv.Atoi(m[1])
		return &TemplateError{Part: part, Line: line, Reason: typeNames.Replace(execAt.ReplaceAllString(m[2], ""))}
	}
	return &TemplateError{Part: part, Reason: typeNames.Replace(msg)}
}

func nodeLine(tr *parse.Tree, n parse.Node) int {
	loc, _ := tr.ErrorContext(n)
	// loc is NAME:LINE:COL
	parts := strings.Split(loc, ":")
	if len(parts) >= 3 {
		if l, err := strconv.Atoi(parts[len(parts)-2]); err == nil {
			return l
		}
	}
	return 0
}

type treeHolder interface {
	*texttemplate.Template | *htmltemplate.Template
}

func treeOf[T treeHolder](t T) *parse.Tree {
	switch t := any(t).(type) {
	case *texttemplate.Template:
		return t.Tree
	case *htmltemplate.Template:
		return t.Tree
	}
	return nil
}

func walkTrees[T treeHolder](ts []T, fn func(*parse.Tree, parse.Node)) {
	for _, t := range ts {
		if tr := treeOf(t); tr != nil && tr.Root != nil {
			walkTree(tr, tr.Root, fn)
		}
	}
}

// walkTree calls fn on n and every node under it, arguments of pipelines included.
func walkTree(tr *parse.Tree, n parse.Node, fn func(*parse.Tree, parse.Node)) {
	if n == nil || reflect.ValueOf(n).IsNil() {
		return
	}
	fn(tr, n)
	switch n := n.(type) {
	case *parse.ListNode:
		for _, c := range n.Nodes {
			walkTree(tr, c, fn)
		}
	case *parse.ActionNode:
		walkTree(tr, n.Pipe, fn)
	case *parse.PipeNode:
		for _, c := range n.Cmds {
			walkTree(tr, c, fn)
		}
	case *parse.CommandNode:
		for _, a := range n.Args {
			walkTree(tr, a, fn)
		}
	case *parse.ChainNode:
		walkTree(tr, n.Node, fn)
	case *parse.IfNode:
		walkBranch(tr, &n.BranchNode, fn)
	case *parse.RangeNode:
		walkBranch(tr, &n.BranchNode, fn)
	case *parse.WithNode:
		walkBranch(tr, &n.BranchNode, fn)
	case *parse.TemplateNode:
		walkTree(tr, n.Pipe, fn)
	}
}

func walkBranch(tr *parse.Tree, b *parse.BranchNode, fn func(*parse.Tree, parse.Node)) {
	walkTree(tr, b.Pipe, fn)
	walkTree(tr, b.List, fn)
	walkTree(tr, b.ElseList, fn)
}

// checkTrees finds at parse time what execution against sample data may not reach:
// calls to call, templates that are not defined, and fields CampaignData lacks, which it
// follows through {{with}} and {{range}} as far as their pipelines are plain fields.
//
// With filter, for text/template, it also ends every printing action that may print a
// nil (a missing attribute) with _cm_text, which prints it as nothing instead of
// "<no value>", as html/template does. Actions known to print a string are left alone,
// as every function call costs at each execution.
func checkTrees[T treeHolder](part string, ts []T, defined func(string) bool, filter bool) error {
	c := &checker{part: part, defined: defined, filter: filter}
	for _, t := range ts {
		tr := treeOf(t)
		if tr == nil || tr.Root == nil {
			continue
		}
		c.tr = tr
		c.root = nil
		if tr.Name == part { // the main template: dot and $ are CampaignData
			c.root = reflect.TypeFor[CampaignData]()
		}
		c.list(tr.Root, c.root)
		if c.err != nil {
			return c.err
		}
	}
	return nil
}

type checker struct {
	part    string
	defined func(string) bool
	filter  bool
	tr      *parse.Tree
	root    reflect.Type // type of $, nil when unknown
	err     *TemplateError
}

func (c *checker) fail(n parse.Node, format string, args ...any) {
	if c.err == nil {
		c.err = &TemplateError{Part: c.part, Line: nodeLine(c.tr, n), Reason: fmt.Sprintf(format, args...)}
	}
}

// list checks the nodes of l, dot being of type dot (nil when unknown).
func (c *checker) list(l *parse.ListNode, dot reflect.Type) {
	if l == nil {
		return
	}
	for _, n := range l.Nodes {
		switch n := n.(type) {
		case *parse.ActionNode:
			c.pipe(n.Pipe, dot)
			if c.filter && len(n.Pipe.Decl) == 0 && c.mayBeNil(n.Pipe, dot) {
				n.Pipe.Cmds = append(n.Pipe.Cmds, &parse.CommandNode{NodeType: parse.NodeCommand, Pos: n.Pos,
					Args: []parse.Node{parse.NewIdentifier("_cm_text").SetTree(c.tr).SetPos(n.Pos)}})
			}
		case *parse.IfNode:
			c.pipe(n.Pipe, dot)
			c.list(n.List, dot)
			c.list(n.ElseList, dot)
		case *parse.WithNode:
			c.pipe(n.Pipe, dot)
			c.list(n.List, c.pipeType(n.Pipe, dot))
			c.list(n.ElseList, dot)
		case *parse.RangeNode:
			c.pipe(n.Pipe, dot)
			if len(n.Pipe.Cmds) == 1 && len(n.Pipe.Cmds[0].Args) == 1 {
				if num, ok := n.Pipe.Cmds[0].Args[0].(*parse.NumberNode); ok && num.IsInt && num.Int64 > 10000 {
					c.fail(n, "range over %d: at most 10000 iterations", num.Int64)
				}
			}
			var elem reflect.Type
			if t := c.pipeType(n.Pipe, dot); t != nil {
				switch t.Kind() {
				case reflect.Slice, reflect.Array, reflect.Map:
					elem = known(t.Elem())
				}
			}
			c.list(n.List, elem)
			c.list(n.ElseList, dot)
		case *parse.TemplateNode:
			if !c.defined(n.Name) {
				c.fail(n, "no template %q is defined", n.Name)
			}
			c.pipe(n.Pipe, dot)
		}
	}
}

func (c *checker) pipe(p *parse.PipeNode, dot reflect.Type) {
	if p == nil {
		return
	}
	for _, cmd := range p.Cmds {
		for _, a := range cmd.Args {
			switch a := a.(type) {
			case *parse.IdentifierNode:
				if a.Ident == "call" {
					c.fail(a, "call is not allowed in campaign templates")
				}
			case *parse.FieldNode:
				c.resolve(a, dot, a.Ident, "")
			case *parse.VariableNode:
				if a.Ident[0] == "$" && len(a.Ident) > 1 {
					c.resolve(a, c.root, a.Ident[1:], "$")
				}
			case *parse.ChainNode:
				if _, ok := a.Node.(*parse.PipeNode); ok {
					c.pipe(a.Node.(*parse.PipeNode), dot)
				}
			case *parse.PipeNode:
				c.pipe(a, dot)
			}
		}
	}
}

// stringFuncs are the functions that never return nil.
var stringFuncs = map[string]bool{"upper": true, "lower": true, "trim": true, "print": true, "printf": true,
	"println": true, "len": true, "html": true, "js": true, "urlquery": true, "not": true,
	"eq": true, "ne": true, "lt": true, "le": true, "gt": true, "ge": true}

// mayBeNil reports whether the pipeline p may evaluate to nil.
func (c *checker) mayBeNil(p *parse.PipeNode, dot reflect.Type) bool {
	last := p.Cmds[len(p.Cmds)-1]
	if len(last.Args) == 0 {
		return true
	}
	var t reflect.Type
	switch a := last.Args[0].(type) {
	case *parse.StringNode, *parse.NumberNode, *parse.BoolNode:
		return false
	case *parse.IdentifierNode:
		return !stringFuncs[a.Ident]
	case *parse.DotNode:
		t = dot
	case *parse.FieldNode:
		t = c.resolve(a, dot, a.Ident, "")
	case *parse.VariableNode:
		if a.Ident[0] == "$" {
			t = c.resolve(a, c.root, a.Ident[1:], "$")
		}
	}
	return len(last.Args) > 1 || t == nil || t.Kind() == reflect.Interface
}

// pipeType is the type a pipeline made of one field evaluates to, or nil.
func (c *checker) pipeType(p *parse.PipeNode, dot reflect.Type) reflect.Type {
	if p == nil || len(p.Cmds) != 1 || len(p.Cmds[0].Args) != 1 {
		return nil
	}
	switch a := p.Cmds[0].Args[0].(type) {
	case *parse.DotNode:
		return dot
	case *parse.FieldNode:
		return c.resolve(a, dot, a.Ident, "")
	case *parse.VariableNode:
		if a.Ident[0] == "$" {
			return c.resolve(a, c.root, a.Ident[1:], "$")
		}
	}
	return nil
}

// resolve follows the field chain idents from type t, reporting a field t lacks.
// It returns the chain's type, or nil when unknown (an attribute, say).
func (c *checker) resolve(n parse.Node, t reflect.Type, idents []string, path string) reflect.Type {
	for _, id := range idents {
		if t == nil {
			return nil
		}
		if _, ok := t.MethodByName(id); ok {
			return nil
		}
		switch t.Kind() {
		case reflect.Struct:
			f, ok := t.FieldByName(id)
			if !ok || !f.IsExported() {
				var names []string
				for f := range t.Fields() {
					names = append(names, f.Name)
				}
				where := path
				if where == "" || where == "$" {
					where = typeLabel(t)
				}
				c.fail(n, "%s has no field %s (it has %s)", where, id, strings.Join(names, ", "))
				return nil
			}
			t = known(f.Type)
		case reflect.Map:
			t = known(t.Elem())
		default:
			c.fail(n, "%s is a %s and has no field %s", path, t.Kind(), id)
			return nil
		}
		path += "." + id
	}
	return t
}

// typeLabel names a type of the campaign data as templates reach it.
func typeLabel(t reflect.Type) string {
	switch t {
	case reflect.TypeFor[CampaignData]():
		return "the campaign data"
	case reflect.TypeFor[SubscriberData]():
		return ".Subscriber"
	case reflect.TypeFor[CampaignInfo]():
		return ".Campaign"
	}
	return t.String()
}

// known returns t, or nil when t is an interface, whose dynamic type is unknown.
func known(t reflect.Type) reflect.Type {
	if t.Kind() == reflect.Interface {
		return nil
	}
	return t
}

// Render renders the message of one recipient. The footer (why they receive it, the
// unsubscribe and preference-centre links, the company and postal address when set, in
// footer.Lang, else the subscriber's locale) is added to both parts whatever the
// template contains: in HTML before </body>, else before </html>, else at the end; in
// text after a "-- " line. Footer URLs left empty are taken from data; Render returns
// ErrFooterURL when there are none.
//
// Data is never parsed as a template, and html/template escapes it in HTML for where
// it lands (so Attributes must not hold its typed strings, such as template.HTML, which
// it trusts). Newlines and other control characters that data brings into the subject
// become spaces, and a subject longer than MaxSubjectBytes is cut. An error from Render
// means data the template did not expect (an attribute of another type, say).
func (c *Campaign) Render(data CampaignData, footer Footer) (Rendered, error) {
	if footer.UnsubscribeURL == "" {
		footer.UnsubscribeURL = data.UnsubscribeURL
	}
	if footer.PreferencesURL == "" {
		footer.PreferencesURL = data.PreferencesURL
	}
	if footer.UnsubscribeURL == "" || footer.PreferencesURL == "" {
		return Rendered{}, ErrFooterURL
	}
	if footer.Lang == "" {
		footer.Lang = data.Subscriber.Locale
	}
	fl, err := footerFor(footer.Lang)
	if err != nil {
		return Rendered{}, err
	}
	rb := renderPool.Get().(*renderBufs)
	defer renderPool.Put(rb)
	rn := c.getRunner()
	defer c.putRunner(rn)
	var r Rendered

	// One meter for the whole message: reset before the subject only.
	rn.m.reset()
	subject, err := rn.render(c.directSubject, rn.subject, &rb.a, maxRenderedSubject, &data)
	if err != nil {
		return Rendered{}, fmt.Errorf("campaign subject: %w", err)
	}
	r.Subject = oneLine(subject)

	body, err := rn.render(c.directHTML, rn.html, &rb.a, maxRenderedHTML, &data)
	if err != nil {
		return Rendered{}, fmt.Errorf("campaign html: %w", err)
	}
	at := footerIndex(body)
	var sb strings.Builder
	sb.Grow(len(body) + 1200)
	sb.Write(body[:at])
	fl.writeHTML(&sb, footer)
	sb.Write(body[at:])
	r.HTML = sb.String()

	var tb strings.Builder
	switch {
	case c.text != nil:
		text, err := rn.render(c.directText, rn.text, &rb.b, maxRenderedText, &data)
		if err != nil {
			return Rendered{}, fmt.Errorf("campaign text: %w", err)
		}
		tb.Grow(len(text) + 600)
		tb.Write(bytes.TrimRight(text, " \t\r\n"))
	case c.derived != nil:
		text, err := rn.render(c.directText, rn.derived, &rb.b, maxRenderedText, &data)
		if err != nil {
			return Rendered{}, fmt.Errorf("campaign text: %w", err)
		}
		tb.Grow(len(text) + 600)
		normalizeText(&tb, text)
	default:
		normalizeText(&tb, []byte(convertHTML(string(body), "", nil)))
	}
	if tb.Len() > 0 {
		tb.WriteString("\n\n")
	}
	fl.writeText(&tb, footer)
	r.Text = tb.String()
	return r, nil
}

type renderBufs struct {
	a, b bytes.Buffer
}

// renderPool keeps buffers grown to the size of a message between renders.
var renderPool = sync.Pool{New: func() any { return new(renderBufs) }}

// oneLine makes a rendered subject safe as a header: control characters (CR and LF
// included) become spaces, and it is cut at MaxSubjectBytes on a character boundary.
func oneLine(b []byte) string {
	clean := true
	for _, c := range b {
		if c < 0x20 || c == 0x7f {
			clean = false
			break
		}
	}
	if !clean {
		b = bytes.Clone(b)
		for i, c := range b {
			if c < 0x20 || c == 0x7f {
				b[i] = ' '
			}
		}
	}
	if len(b) > MaxSubjectBytes {
		n := MaxSubjectBytes
		for n > 0 && !utf8.RuneStart(b[n]) {
			n--
		}
		b = b[:n]
	}
	return string(b)
}

// footerIndex is where the footer goes in a rendered HTML body: before the last
// </body>, else before the last </html>, else at the end.
func footerIndex(b []byte) int {
	if i := lastTag(b, "</body"); i >= 0 {
		return i
	}
	if i := lastTag(b, "</html"); i >= 0 {
		return i
	}
	return len(b)
}

// lastTag is the index of the last occurrence of tag (lower case ASCII) in b, in any
// case, or -1.
func lastTag(b []byte, tag string) int {
next:
	for i := bytes.LastIndexByte(b, '<'); i >= 0; i = bytes.LastIndexByte(b[:i], '<') {
		if len(b)-i < len(tag) {
			continue
		}
		for j := 1; j < len(tag); j++ {
			c := b[i+j]
			if 'A' <= c && c <= 'Z' {
				c += 'a' - 'A'
			}
			if c != tag[j] {
				continue next
			}
		}
		return i
	}
	return -1
}
