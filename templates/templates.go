// Package templates renders everything consentmail shows a person: the subscriber-facing
// pages and the system emails (HTML and plain text), in English and French. Templates,
// the stylesheet and the message catalogs are embedded in the binary.
//
// Pages and emails are html/template, so every value is escaped for its context; plain
// text parts are text/template. Language is chosen by Negotiate: the subscriber's stored
// locale, else the browser's Accept-Language, else English.
//
// Campaign templates, written by marketers, are checked once by ParseCampaign (syntax,
// unknown fields and functions, sizes: errors name the part and line) and rendered per
// recipient by Campaign.Render, which inlines nothing at send time (CSS is inlined at
// parse time), derives the plain text from the HTML when none is given, and always
// appends the mandatory footer: unsubscribe link, preference-centre link, postal address.
// Every execution of a campaign template is bounded in work, memory and output, so
// that no template, whatever its author or the recipient's data, can pin a core or
// exhaust memory (ParseCampaign, "Limits").
package templates

import (
	"bytes"
	"embed"
	"fmt"
	"html"
	htmltemplate "html/template"
	"io"
	"io/fs"
	"path"
	"regexp"
	"strings"
	"sync"
	texttemplate "text/template"
	"time"

	"golang.org/x/text/language"
)

//go:embed pages/*.html emails/*.html emails/*.txt locales/*.json static/* admin/*.html
var files embed.FS

// Languages are the supported languages, the first being the fallback.
var Languages = []string{"en", "fr"}

var matcher = language.NewMatcher([]language.Tag{language.English, language.French})

// Negotiate picks a supported language: stored (a subscriber's locale) when it matches
// one, else the best match of acceptLanguage, else English.
func Negotiate(stored, acceptLanguage string) string {
	if stored != "" {
		if t, err := language.Parse(stored); err == nil {
			if _, i, conf := matcher.Match(t); conf != language.No {
				return Languages[i]
			}
		}
	}
	if acceptLanguage != "" {
		tags, _, err := language.ParseAcceptLanguage(acceptLanguage)
		if err == nil && len(tags) > 0 {
			if _, i, conf := matcher.Match(tags...); conf != language.No {
				return Languages[i]
			}
		}
	}
	return Languages[0]
}

// Site is what every page shows about the company running the service.
type Site struct {
	Company    string // shown in the header and footer
	PrivacyURL string // the company's privacy notice, linked from every page
	LogoURL    string // the company's logo (an https URL or a path on this server), shown in the admin app's header
	Accent     string // the accent colour (#rrggbb), used by the admin app and the subscriber pages
}

// Renderer renders pages and emails. It is safe for concurrent use.
type Renderer struct {
	site  Site
	pages map[string]*htmltemplate.Template // by language
	html  map[string]*htmltemplate.Template // emails, by language
	text  map[string]*texttemplate.Template // emails, by language
	cats  map[string]catalog
}

type catalog map[string]string

// New parses every embedded template once per language.
func New(site Site) (*Renderer, error) {
	r := &Renderer{site: site, pages: map[string]*htmltemplate.Template{}, html: map[string]*htmltemplate.Template{},
		text: map[string]*texttemplate.Template{}, cats: map[string]catalog{}}
	for _, lang := range Languages {
		cat, err := readCatalog(files, "locales/"+lang+".json")
		if err != nil {
			return nil, err
		}
		r.cats[lang] = cat
		t := translator(lang, cat)
		funcs := map[string]any{"t": t, "tv": func(key string, args []any) string { return t(key, args...) },
			"date": dateFormatter(lang), "accent": r.accent}
		if r.pages[lang], err = parseHTML(funcs, cat, "pages/*.html"); err != nil {
			return nil, err
		}
		if r.html[lang], err = parseHTML(funcs, cat, "emails/*.html"); err != nil {
			return nil, err
		}
		tt := texttemplate.New("").Funcs(funcs)
		err = eachFile(files, "emails/*.txt", func(name, src string) error {
			_, err := tt.New(name).Parse(inline(src, cat, func(s string) string { return s }))
			return err
		})
		if err != nil {
			return nil, err
		}
		r.text[lang] = tt
	}
	return r, nil
}

// literalT matches {{t "key"}} with no arguments: such calls are resolved when the
// templates are parsed, once per language, instead of at every execution.
var literalT = regexp.MustCompile(`{{t "([a-z0-9_.]+)"}}`)

// inline replaces literal translation calls by their text, escaped for the target.
func inline(src string, cat catalog, escape func(string) string) string {
	return literalT.ReplaceAllStringFunc(src, func(call string) string {
		key := literalT.FindStringSubmatch(call)[1]
		msg, ok := cat[key]
		if !ok || strings.Contains(msg, "%") || strings.Contains(msg, "{{") {
			return call
		}
		return escape(msg)
	})
}

func parseHTML(funcs map[string]any, cat catalog, pattern string) (*htmltemplate.Template, error) {
	t := htmltemplate.New("").Funcs(funcs)
	return t, parseInto(t, files, pattern, cat)
}

// parseInto adds to t every template of fsys matching pattern, named by its base
// name, with its literal translation calls resolved from cat.
func parseInto(t *htmltemplate.Template, fsys fs.FS, pattern string, cat catalog) error {
	return eachFile(fsys, pattern, func(name, src string) error {
		_, err := t.New(name).Parse(inline(src, cat, html.EscapeString))
		return err
	})
}

func eachFile(fsys fs.FS, pattern string, fn func(name, src string) error) error {
	names, err := fs.Glob(fsys, pattern)
	if err != nil {
		return err
	}
	for _, n := range names {
		raw, err := fs.ReadFile(fsys, n)
		if err != nil {
			return err
		}
		if err := fn(path.Base(n), string(raw)); err != nil {
			return fmt.Errorf("template %s: %w", n, err)
		}
	}
	return nil
}

// translator returns the t function of one language: t "key" args... formats the
// catalog entry with fmt.Sprintf. A missing key renders as the key, so it shows in tests.
func translator(lang string, cat catalog) func(string, ...any) string {
	return func(key string, args ...any) string {
		msg, ok := cat[key]
		if !ok {
			return key
		}
		if len(args) == 0 {
			return msg
		}
		return fmt.Sprintf(msg, args...)
	}
}

func dateFormatter(lang string) func(time.Time) string {
	return func(t time.Time) string {
		t = t.UTC()
		if lang == "fr" {
			return t.Format("02/01/2006 15:04 UTC")
		}
		return t.Format("2 Jan 2006 15:04 UTC")
	}
}

// defaultAccent is the accent colour without branding.
const defaultAccent = "#0b57d0"

// accent is the site's accent colour for system mail's buttons and links (mail
// cannot load /static/brand.css): the configured one when valid, else the default.
func (r *Renderer) accent() htmltemplate.CSS {
	if ValidAccent(r.site.Accent) {
		return htmltemplate.CSS(r.site.Accent) // #rgb or #rrggbb: nothing else passes
	}
	return defaultAccent
}

// T returns the catalog entry key in lang, formatted with args.
func (r *Renderer) T(lang, key string, args ...any) string {
	cat, ok := r.cats[lang]
	if !ok {
		cat = r.cats[Languages[0]]
	}
	return translator(lang, cat)(key, args...)
}

// PageData is what every page template receives.
type PageData struct {
	Lang      string
	Title     string // catalog key of the page title; an email's subject, translated
	TitleArgs []any  // arguments of the title's format
	Site      Site
	Data      any
}

// Page writes page name (e.g. "confirm") in lang with data; title is the catalog key
// of its title, formatted with titleArgs.
func (r *Renderer) Page(w io.Writer, lang, name, title string, data any, titleArgs ...any) error {
	t, ok := r.pages[lang]
	if !ok {
		t = r.pages[Languages[0]]
		lang = Languages[0]
	}
	return t.ExecuteTemplate(w, name+".html", PageData{Lang: lang, Title: title, TitleArgs: titleArgs, Site: r.site, Data: data})
}

// Message is the data of the "message" page: paragraphs (catalog keys), an optional
// list of lists (any slice of values with Name and Purpose), more paragraphs, an
// optional POST button and an optional link under it.
type Message struct {
	Paragraphs []string
	Lists      any
	After      []string
	Action     string // when set, a POST button to this URL
	Button     string // its catalog key
	LinkURL    string // when set, a link under the button
	LinkText   string // its catalog key
	// Contact, when set, is the address shown for writing to the controller or its
	// data protection officer.
	Contact string
}

// Email is a rendered system email.
type Email struct {
	Subject string
	HTML    string
	Text    string
}

var bufPool = sync.Pool{New: func() any { return new(bytes.Buffer) }}

// Email renders system email name (e.g. "optin") in lang: the subject is the catalog
// entry "NAME.subject", the parts are emails/NAME.html and emails/NAME.txt.
func (r *Renderer) Email(lang, name string, data any) (Email, error) {
	if _, ok := r.html[lang]; !ok {
		lang = Languages[0]
	}
	pd := PageData{Lang: lang, Site: r.site, Data: data, Title: r.T(lang, name+".subject")}
	buf := bufPool.Get().(*bytes.Buffer)
	defer bufPool.Put(buf)
	buf.Reset()
	if err := r.html[lang].ExecuteTemplate(buf, name+".html", pd); err != nil {
		return Email{}, fmt.Errorf("email %s (%s) html: %w", name, lang, err)
	}
	html := buf.String()
	buf.Reset()
	if err := r.text[lang].ExecuteTemplate(buf, name+".txt", pd); err != nil {
		return Email{}, fmt.Errorf("email %s (%s) text: %w", name, lang, err)
	}
	return Email{Subject: r.T(lang, name+".subject"), HTML: html, Text: strings.TrimSpace(buf.String()) + "\n"}, nil
}

// Static returns the embedded static files (the stylesheet), to be served under /static.
func Static() fs.FS {
	sub, err := fs.Sub(files, "static")
	if err != nil {
		panic(err) // the directory is embedded at build time
	}
	return sub
}
