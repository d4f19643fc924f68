package templates

import (
	"bytes"
	"encoding/json"
	"fmt"
	htmltemplate "html/template"
	"io"
	"io/fs"
	"regexp"
	"strings"
)

// The admin web app (/admin) has one layout, owned here; each feature package owns
// the pages of its feature (their templates and their message catalogs) and renders
// them through AdminViews, so every page shares the header, navigation, language,
// CSRF field, flash messages and branding.
//
// A feature's page template is a file NAME.html that starts with
// {{template "admin_top" .}} and ends with {{template "admin_bottom" .}}; between
// them . is the AdminPage and .Data the feature's own data. Forms that POST include
// {{template "csrf" $}}. Strings come from the catalogs: {{t "key"}} or
// {{t "key" arg...}} (fmt verbs), from the layout's catalog (locales/admin.LANG.json)
// merged with the feature's (LANG.json beside its templates); a key defined twice is
// an error when the views are parsed.

// The layout loads /static/htmx.min.js: htmx 2.0.11 from the npm registry (package
// htmx.org), embedded in the binary so that no page loads a script from elsewhere.
// Pages work without it; it only refreshes parts of pages (progress, previews).

// AdminUser is the person signed in to the admin app.
type AdminUser struct {
	ID    string
	Email string
	Role  string // admin, marketer, dpo or viewer: the API's roles
}

// Can reports whether the user's role is one of roles (admin always can).
func (u AdminUser) Can(roles ...string) bool {
	if u.Role == "admin" {
		return true
	}
	for _, r := range roles {
		if r == u.Role {
			return true
		}
	}
	return false
}

// AdminPage is what every admin page template receives.
type AdminPage struct {
	Lang    string
	Title   string // already translated
	Section string // the navigation entry shown as current: overview, lists, subscribers, templates, campaigns, imports, dpo, settings, account
	User    AdminUser
	CSRF    string // the session's CSRF token, for {{template "csrf" $}}
	Flash   string // a confirmation shown once at the top of the page (already translated)
	Error   string // an error shown at the top of the page (already translated)
	Site    Site
	Path    string // the request path, for the language switch
	Data    any
}

// AdminViews renders one feature's admin pages.
type AdminViews struct {
	byLang map[string]*htmltemplate.Template
	cats   map[string]catalog
}

// AdminViews parses a feature's admin pages: every *.html in fsys's root, with the
// layout, and the catalogs en.json and fr.json in fsys's root merged with the layout's.
func (r *Renderer) AdminViews(fsys fs.FS) (*AdminViews, error) {
	v := &AdminViews{byLang: map[string]*htmltemplate.Template{}, cats: map[string]catalog{}}
	for _, lang := range Languages {
		cat, err := readCatalog(files, "locales/admin."+lang+".json")
		if err != nil {
			return nil, err
		}
		own, err := readCatalog(fsys, lang+".json")
		if err != nil {
			return nil, err
		}
		for k, msg := range own {
			if _, dup := cat[k]; dup {
				return nil, fmt.Errorf("admin catalog %s: key %q is already the layout's", lang, k)
			}
			cat[k] = msg
		}
		v.cats[lang] = cat
		t := htmltemplate.New("").Funcs(adminFuncs(lang, cat))
		if err := parseInto(t, files, "admin/*.html", cat); err != nil {
			return nil, err
		}
		if err := parseInto(t, fsys, "*.html", cat); err != nil {
			return nil, err
		}
		v.byLang[lang] = t
	}
	return v, nil
}

// readCatalog reads one message catalog (a JSON object of strings).
func readCatalog(fsys fs.FS, name string) (catalog, error) {
	raw, err := fs.ReadFile(fsys, name)
	if err != nil {
		return nil, fmt.Errorf("catalog: %w", err)
	}
	var cat catalog
	if err := json.Unmarshal(raw, &cat); err != nil {
		return nil, fmt.Errorf("catalog %s: %w", name, err)
	}
	return cat, nil
}

func adminFuncs(lang string, cat catalog) map[string]any {
	t := translator(lang, cat)
	return map[string]any{
		"t":    t,
		"date": dateFormatter(lang),
		"num":  numberFormatter(lang),
		"navItem": func(p AdminPage, section, href, key string) navEntry {
			return navEntry{Href: href, Label: t(key), Current: p.Section == section}
		},
		"pct": func(part, whole int64) string {
			if whole <= 0 {
				return "–"
			}
			return numberFormatter(lang)(part*1000/whole/10) + pctDecimal(lang, part*1000/whole%10) + "\u00a0%"
		},
	}
}

func pctDecimal(lang string, d int64) string {
	if lang == "fr" {
		return fmt.Sprintf(",%d", d)
	}
	return fmt.Sprintf(".%d", d)
}

// numberFormatter groups thousands: 12,345 in English, 12 345 in French.
func numberFormatter(lang string) func(int64) string {
	sep := ","
	if lang == "fr" {
		sep = "\u202f"
	}
	return func(n int64) string {
		s := fmt.Sprint(n)
		neg := strings.HasPrefix(s, "-")
		s = strings.TrimPrefix(s, "-")
		var b strings.Builder
		for i, c := range s {
			if i > 0 && (len(s)-i)%3 == 0 {
				b.WriteString(sep)
			}
			b.WriteRune(c)
		}
		if neg {
			return "-" + b.String()
		}
		return b.String()
	}
}

type navEntry struct {
	Href, Label string
	Current     bool
}

// accentColour is a CSS hex colour: #rgb or #rrggbb.
var accentColour = regexp.MustCompile(`^#([0-9a-fA-F]{3}|[0-9a-fA-F]{6})$`)

// ValidAccent reports whether s is an accent colour BrandCSS accepts.
func ValidAccent(s string) bool { return accentColour.MatchString(s) }

// BrandCSS is the stylesheet that carries the site's accent colour to the admin app
// and the subscriber pages (served as /static/brand.css: no inline style is needed,
// so the Content-Security-Policy stays without 'unsafe-inline').
func BrandCSS(site Site) []byte {
	if !ValidAccent(site.Accent) {
		return []byte("/* default accent */\n")
	}
	return []byte(":root{--accent:" + site.Accent + "}\n")
}

// T returns the catalog entry key in lang (the layout's and the feature's), formatted
// with args: for flash messages and titles built by handlers.
func (v *AdminViews) T(lang, key string, args ...any) string {
	cat, ok := v.cats[lang]
	if !ok {
		cat = v.cats[Languages[0]]
	}
	return translator(lang, cat)(key, args...)
}

// Render writes page name (NAME.html of the feature) in p.Lang.
func (v *AdminViews) Render(w io.Writer, name string, p AdminPage) error {
	t, ok := v.byLang[p.Lang]
	if !ok {
		p.Lang = Languages[0]
		t = v.byLang[p.Lang]
	}
	buf := bufPool.Get().(*bytes.Buffer)
	defer bufPool.Put(buf)
	buf.Reset()
	if err := t.ExecuteTemplate(buf, name+".html", p); err != nil {
		return fmt.Errorf("admin page %s (%s): %w", name, p.Lang, err)
	}
	_, err := w.Write(buf.Bytes())
	return err
}
