package templates

import (
	"bytes"
	"errors"
	"fmt"
	htmltemplate "html/template"
	"io"
	"net/url"
	"reflect"
	"strconv"
	"strings"
	"sync"
	texttemplate "text/template"
	"text/template/parse"
	"time"
)

// How campaign templates are kept from taking the service down. Go's templates have
// no limits of their own: three nested {{range 10000}} run 10¹² iterations, and
// {{$s = printf "%s%s" $s $s}} in a loop doubles a string until memory runs out.
// Every execution of a campaign template (the trial runs of ParseCampaign, and
// Render: preview, test send, send) is therefore metered:
//
//   - Work. Before each iteration of a range, each call of a {{define}}d template and
//     the main template, a check inserted into the parse tree charges the number of
//     nodes of the body about to run to a meter; a function that makes a string
//     charges one step per stepBytes bytes it makes. Past MaxSteps steps, or
//     maxRenderTime of wall-clock time, execution stops with an error wrapping
//     ErrLimit. Every node runs in bounded time (values are bounded, below), so
//     steps bound time.
//   - Values. Every function that makes a string (print, printf, println, html, js,
//     urlquery, upper, lower, trim) refuses to make one longer than MaxValueBytes,
//     checking an upper bound of its length before building it (printf widths and
//     precisions included); other functions return parts of their arguments. As
//     made strings are charged to the meter, one execution makes at most
//     MaxSteps×stepBytes bytes of them, whatever it keeps in variables.
//   - Output. What one execution writes is capped (a few MiB: maxRendered*).
//   - Depth. A template may not call itself, directly or through others, and
//     structures and calls may nest at most maxNesting deep: stack stays small.
//
// The meter lives in the functions the template calls, and Go's templates have no
// per-execution state, so each execution uses a clone of the parsed template bound to
// a meter of its own; Render takes one from a small pool.

// Limits of one execution of a campaign template.
const (
	MaxSteps      = 1 << 18  // nodes run, plus one per stepBytes bytes of strings made
	MaxValueBytes = 32 << 10 // longest string a template function makes
	stepBytes     = 16
	maxRenderTime = 2 * time.Second
	maxNesting    = 100
)

// ErrLimit is wrapped by the errors of an execution of a campaign template that did
// too much work, made too long a string or wrote too much.
var ErrLimit = errors.New("over the limits of a campaign template")

// meter counts the work of one execution.
type meter struct {
	steps    int
	deadline time.Time
	err      error
}

// unbound is the meter of parsed templates, which are only cloned, never executed.
var unbound = &meter{err: errors.New("templates: campaign template executed without a meter")}

func (m *meter) reset() {
	m.steps, m.err = 0, nil
	m.deadline = time.Now().Add(maxRenderTime)
}

// charge adds n steps and returns the meter's error, once it has one.
func (m *meter) charge(n int) error {
	if m.err != nil {
		return m.err
	}
	before := m.steps
	m.steps += n
	switch {
	case m.steps > MaxSteps:
		m.err = fmt.Errorf("%w: does more than %d steps of work (a loop too long, or loops nested too deep?)", ErrLimit, MaxSteps)
	case before>>12 != m.steps>>12 && time.Now().After(m.deadline):
		m.err = fmt.Errorf("%w: runs longer than %s", ErrLimit, maxRenderTime)
	}
	return m.err
}

// made charges a string of n bytes about to be made, refusing one over MaxValueBytes.
func (m *meter) made(fn string, n int) error {
	if n > MaxValueBytes {
		return fmt.Errorf("%w: %s would make a value of about %d bytes; the limit is %d", ErrLimit, fn, n, MaxValueBytes)
	}
	return m.charge(1 + n/stepBytes)
}

// funcs are the functions of campaign templates, charging m: campaignFuncs' own and
// Go's built-ins that make strings.
func (m *meter) funcs() map[string]any {
	return map[string]any{
		"default": func(def, v any) any {
			if isEmpty(v) {
				return def
			}
			return v
		},
		"upper": func(v any) (string, error) { return m.mapString("upper", v, strings.ToUpper) },
		"lower": func(v any) (string, error) { return m.mapString("lower", v, strings.ToLower) },
		"trim":  func(v any) (string, error) { return m.mapString("trim", v, strings.TrimSpace) },
		// Added by the parser after every printing action of a text template, so that a
		// missing attribute prints as nothing instead of "<no value>", as in html/template.
		"_cm_text": func(v any) any {
			if v == nil {
				return ""
			}
			return v
		},
		// Added by the parser at the start of every template and range body.
		"_cm_tick": func(n int) (bool, error) { return false, m.charge(n) },
		"print": func(args ...any) (string, error) {
			if err := m.made("print", sprintBound(args...)); err != nil {
				return "", err
			}
			return fmt.Sprint(args...), nil
		},
		"println": func(args ...any) (string, error) {
			if err := m.made("println", sprintBound(args...)); err != nil {
				return "", err
			}
			return fmt.Sprintln(args...), nil
		},
		"printf": func(format string, args ...any) (string, error) {
			n, err := printfBound(format, args)
			if err != nil {
				return "", err
			}
			if err := m.made("printf", n); err != nil {
				return "", err
			}
			return fmt.Sprintf(format, args...), nil
		},
		"html":     func(args ...any) (string, error) { return m.escape("html", args, htmltemplate.HTMLEscapeString) },
		"js":       func(args ...any) (string, error) { return m.escape("js", args, htmltemplate.JSEscapeString) },
		"urlquery": func(args ...any) (string, error) { return m.escape("urlquery", args, url.QueryEscape) },
	}
}

func (m *meter) mapString(fn string, v any, f func(string) string) (string, error) {
	if err := m.made(fn, sprintBound(v)); err != nil {
		return "", err
	}
	out := f(toString(v))
	return out, m.made(fn, len(out))
}

// escape is Go's html, js or urlquery built-in.
func (m *meter) escape(fn string, args []any, f func(string) string) (string, error) {
	if err := m.made(fn, sprintBound(args...)); err != nil {
		return "", err
	}
	var s string
	ok := false
	if len(args) == 1 {
		s, ok = args[0].(string)
	}
	if !ok {
		s = fmt.Sprint(args...)
	}
	out := f(s)
	return out, m.made(fn, len(out))
}

// sizes are the longest a string and a number print, per byte and in all.
type sizes struct{ perByte, number int }

var (
	printSizes  = sizes{perByte: 1, number: 32}  // %v
	printfSizes = sizes{perByte: 10, number: 72} // any verb: %q and %x of strings, %b of numbers
)

// sprintBound is an upper bound of the length of fmt.Sprint(args...), or of
// fmt.Sprintln; it stops counting past MaxValueBytes.
func sprintBound(args ...any) int {
	n := 0
	for _, a := range args {
		n += 1 + printSizes.of(reflect.ValueOf(a), 0, MaxValueBytes+1-n)
		if n > MaxValueBytes {
			break
		}
	}
	return n
}

// of is an upper bound of the length of v printed by fmt, counting up to limit.
func (z sizes) of(v reflect.Value, depth, limit int) int {
	const container = 32 // a type name and braces (%#v)
	if !v.IsValid() {
		return 16
	}
	if depth > 16 {
		return limit + 1 // fmt prints cycles and deep values at length
	}
	switch v.Kind() {
	case reflect.String:
		return 2 + z.perByte*v.Len()
	case reflect.Interface, reflect.Pointer:
		if v.IsNil() {
			return 16
		}
		if v.Kind() == reflect.Pointer && depth > 0 {
			return 24 // fmt prints the address of pointers below the top level
		}
		return z.of(v.Elem(), depth+1, limit)
	case reflect.Slice, reflect.Array:
		if v.Kind() == reflect.Slice && v.Type().Elem().Kind() == reflect.Uint8 {
			return container + 4*z.perByte*v.Len()
		}
		n := container
		for i := 0; i < v.Len() && n <= limit; i++ {
			n += 2 + z.of(v.Index(i), depth+1, limit-n)
		}
		return n
	case reflect.Map:
		n := container
		it := v.MapRange()
		for it.Next() && n <= limit {
			n += 2 + z.of(it.Key(), depth+1, limit-n)
			n += z.of(it.Value(), depth+1, limit-n)
		}
		return n
	case reflect.Struct:
		n := container
		for i := 0; i < v.NumField() && n <= limit; i++ {
			n += 2 + len(v.Type().Field(i).Name) + z.of(v.Field(i), depth+1, limit-n)
		}
		return n
	}
	return z.number // numbers, booleans, funcs, channels
}

// printfBound is an upper bound of the length of fmt.Sprintf(format, args...), or an
// error for a width or precision over 10000 or given by an argument (*).
func printfBound(format string, args []any) (int, error) {
	n := len(format)
	verbs, indexed := 0, false
	for i := 0; i < len(format); i++ {
		if format[i] != '%' {
			continue
		}
		i++
		for i < len(format) && strings.IndexByte("+-# 0", format[i]) >= 0 {
			i++
		}
		for _, what := range []string{"width", "precision"} {
			if what == "precision" {
				if i >= len(format) || format[i] != '.' {
					break
				}
				i++
			}
			j := i
			for i < len(format) && '0' <= format[i] && format[i] <= '9' {
				i++
			}
			if i < len(format) && (format[i] == '*' || format[i] == '[') {
				if format[i] == '*' {
					return 0, fmt.Errorf("%w: printf %s given by an argument (*) is not allowed", ErrLimit, what)
				}
				indexed = true
			}
			if i > j {
				w, err := strconv.Atoi(format[j:i])
				if err != nil || w > 10000 {
					return 0, fmt.Errorf("%w: printf %s %s is over 10000", ErrLimit, what, format[j:i])
				}
				n += w
			}
		}
		if i < len(format) && format[i] == '[' {
			indexed = true
		}
		verbs++
	}
	biggest := 0
	for _, a := range args {
		b := printfSizes.of(reflect.ValueOf(a), 0, MaxValueBytes+1)
		n += 32 + b // %!verb(type=...) and %!(EXTRA ...) wrappers included
		biggest = max(biggest, b)
		if n > MaxValueBytes {
			return n, nil
		}
	}
	if indexed { // %[1]s may print one argument as many times as there are verbs
		n += verbs * (32 + biggest)
	}
	return n, nil
}

// meterTrees inserts the meter's checks into the parse trees of ts: at the start of
// each template and of each range body, {{if _cm_tick N}}{{end}}, N being the number
// of nodes of that body. Since it prints nothing and contains nothing, it changes
// neither the output nor html/template's escaping.
func meterTrees[T treeHolder](ts []T) {
	for _, t := range ts {
		tr := treeOf(t)
		if tr == nil || tr.Root == nil {
			continue
		}
		var ranges []*parse.RangeNode
		walkTree(tr, tr.Root, func(_ *parse.Tree, n parse.Node) {
			if r, ok := n.(*parse.RangeNode); ok {
				ranges = append(ranges, r)
			}
		})
		for _, r := range ranges {
			prependTick(tr, r.List, r.Pos)
		}
		prependTick(tr, tr.Root, tr.Root.Pos)
	}
}

func prependTick(tr *parse.Tree, l *parse.ListNode, pos parse.Pos) {
	weight := 1
	walkTree(tr, l, func(*parse.Tree, parse.Node) { weight++ })
	arg := &parse.NumberNode{NodeType: parse.NodeNumber, Pos: pos, IsInt: true, Int64: int64(weight), Text: strconv.Itoa(weight)}
	cmd := &parse.CommandNode{NodeType: parse.NodeCommand, Pos: pos,
		Args: []parse.Node{parse.NewIdentifier("_cm_tick").SetTree(tr).SetPos(pos), arg}}
	tick := &parse.IfNode{BranchNode: parse.BranchNode{NodeType: parse.NodeIf, Pos: pos,
		Pipe: &parse.PipeNode{NodeType: parse.NodePipe, Pos: pos, Cmds: []*parse.CommandNode{cmd}},
		List: &parse.ListNode{NodeType: parse.NodeList, Pos: pos}}}
	l.Nodes = append([]parse.Node{tick}, l.Nodes...)
}

// checkCalls refuses templates that call themselves, directly or through others, and
// structures and calls nested more than maxNesting deep.
func checkCalls[T treeHolder](part string, ts []T) error {
	trees := map[string]*parse.Tree{}
	for _, t := range ts {
		if tr := treeOf(t); tr != nil && tr.Root != nil {
			trees[tr.Name] = tr
		}
	}
	const visiting = -1
	depth := map[string]int{} // of each template visited: its deepest nesting, calls included
	var err *TemplateError
	var visit func(name string, via []string) int
	visit = func(name string, via []string) int {
		if d, ok := depth[name]; ok {
			return d
		}
		tr := trees[name]
		if tr == nil {
			return 0
		}
		depth[name] = visiting
		deepest := 0
		var walk func(n parse.Node, d int)
		walk = func(n parse.Node, d int) {
			if err != nil || n == nil || reflect.ValueOf(n).IsNil() {
				return
			}
			deepest = max(deepest, d)
			if d > maxNesting && err == nil {
				err = &TemplateError{Part: part, Line: nodeLine(tr, n), Reason: fmt.Sprintf("is nested more than %d deep", maxNesting)}
				return
			}
			switch n := n.(type) {
			case *parse.ListNode:
				for _, c := range n.Nodes {
					walk(c, d)
				}
			case *parse.IfNode:
				walk(n.List, d+1)
				walk(n.ElseList, d+1)
			case *parse.RangeNode:
				walk(n.List, d+1)
				walk(n.ElseList, d+1)
			case *parse.WithNode:
				walk(n.List, d+1)
				walk(n.ElseList, d+1)
			case *parse.TemplateNode:
				if depth[n.Name] == visiting {
					chain := append(append(via[:len(via):len(via)], name), n.Name)
					err = &TemplateError{Part: part, Line: nodeLine(tr, n),
						Reason: fmt.Sprintf("template %q calls itself (%s); templates may not recurse", n.Name, strings.Join(chain, " → "))}
					return
				}
				callee := visit(n.Name, append(via, name))
				if d+1+callee > maxNesting && err == nil {
					err = &TemplateError{Part: part, Line: nodeLine(tr, n), Reason: fmt.Sprintf("is nested more than %d deep (template calls included)", maxNesting)}
				}
				deepest = max(deepest, d+1+callee)
			}
		}
		walk(tr.Root, 0)
		depth[name] = deepest
		return deepest
	}
	for name := range trees {
		if visit(name, nil); err != nil {
			return err
		}
	}
	return nil
}

// boundText returns a clone of t bound to m, for one execution at a time.
func boundText(t *texttemplate.Template, m *meter) *texttemplate.Template {
	c, err := t.Clone() // fails only for a template already executed, which t never is
	if err != nil {
		panic(err)
	}
	return c.Funcs(m.funcs())
}

// boundHTML returns a clone of t bound to m; t must never have been executed.
func boundHTML(t *htmltemplate.Template, m *meter) *htmltemplate.Template {
	c, err := t.Clone()
	if err != nil {
		panic(err)
	}
	return c.Funcs(m.funcs())
}

type executer interface {
	Execute(io.Writer, any) error
}

// run executes t (bound to m) on data into buf, writing at most limit bytes; m is
// reset first.
func run(t executer, m *meter, w *limitWriter, data any) error {
	m.reset()
	if err := t.Execute(w, data); err != nil {
		return err
	}
	return m.err // a range stopped by the meter may leave no error behind otherwise
}

// runner is a campaign bound to a meter of its own.
type runner struct {
	m                      meter
	subject, text, derived *texttemplate.Template
	html                   *htmltemplate.Template
	w                      limitWriter
	scratch                [2][]byte // the direct path's, for escapers in a chain
}

// maxIdleRunners is how many runners a Campaign keeps between renders.
const maxIdleRunners = 16

type runnerPool struct {
	mu   sync.Mutex
	idle []*runner
}

func (c *Campaign) getRunner() *runner {
	c.pool.mu.Lock()
	if n := len(c.pool.idle); n > 0 {
		r := c.pool.idle[n-1]
		c.pool.idle = c.pool.idle[:n-1]
		c.pool.mu.Unlock()
		return r
	}
	c.pool.mu.Unlock()
	r := &runner{}
	r.subject = boundText(c.subject, &r.m)
	r.html = boundHTML(c.html, &r.m)
	if c.text != nil {
		r.text = boundText(c.text, &r.m)
	}
	if c.derived != nil {
		r.derived = boundText(c.derived, &r.m)
	}
	return r
}

func (c *Campaign) putRunner(r *runner) {
	c.pool.mu.Lock()
	if len(c.pool.idle) < maxIdleRunners {
		c.pool.idle = append(c.pool.idle, r)
	}
	c.pool.mu.Unlock()
}

// render renders one part of a message into buf (reset first) and returns it: by the
// direct path d when the part has one and it takes data, else (or when it gives up)
// by t, one of r's parts, from the start and with the meter as it was before.
func (r *runner) render(d *direct, t executer, buf *bytes.Buffer, max int, data *CampaignData) ([]byte, error) {
	buf.Reset()
	if d != nil {
		before := r.m
		dr := directRun{m: &r.m, out: buf.AvailableBuffer(), max: max, scratch: r.scratch}
		ok := d.exec(&dr, data)
		r.scratch = dr.scratch
		if ok {
			if cap(dr.out) > buf.Available() {
				buf.Write(dr.out) // it outgrew buf: grow buf for the next message
				return buf.Bytes(), nil
			}
			return dr.out, nil // in buf's room, which buf's next use overwrites
		}
		r.m = before
	}
	r.w = limitWriter{buf: buf, max: max}
	if err := r.exec(t, &r.w, *data); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// exec executes t, one of r's parts, without resetting the meter: the parts of one
// message share it.
func (r *runner) exec(t executer, w io.Writer, data any) error {
	if err := t.Execute(w, data); err != nil {
		return err
	}
	return r.m.err
}
