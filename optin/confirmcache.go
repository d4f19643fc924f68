package optin

import (
	htmltemplate "html/template"
	"strconv"
	"strings"
	"sync"
	"time"

	"consentmail/preferences"
	"consentmail/templates"
)

// confirmations renders confirmation mails once per what they show alike (language,
// lists, expiry to the minute, whether a name is given) with placeholders for what is
// each person's own (the name and the link's token), then puts those in, escaped as
// the template escapes them: most of the mailer's work was rendering the same mail
// again. The key holds every field of a list that emails/optin.html and optin.txt show
// (name and purpose): a template that shows another must add it here. The result is the mail rendered directly, byte for byte
// (TestCachedConfirmationIsTheRenderedOne).
type confirmations struct {
	pages *templates.Renderer
	mu    sync.Mutex
	m     map[string]*cachedMail
}

// cachedMail is a rendered mail cut at its placeholders, each part a template of
// literal text and slots.
type cachedMail struct{ subject, html, text []segment }

// segment is literal text followed by a slot (slotNone at the end).
type segment struct {
	lit  string
	slot int
}

const (
	slotNone = iota
	slotName
	slotToken
)

// cut splits s at every placeholder: one pass at caching, so that filling a mail
// searches nothing and never looks again at what it put in.
func cut(s string) []segment {
	var out []segment
	for {
		n, t := strings.Index(s, namePlaceholder), strings.Index(s, tokenPlaceholder)
		at, slot, size := n, slotName, len(namePlaceholder)
		if t >= 0 && (n < 0 || t < n) {
			at, slot, size = t, slotToken, len(tokenPlaceholder)
		}
		if at < 0 {
			return append(out, segment{lit: s})
		}
		out = append(out, segment{lit: s[:at], slot: slot})
		s = s[at+size:]
	}
}

// fill puts name and token in the slots of parts.
func fill(parts []segment, name, token string) string {
	in := [...]string{slotNone: "", slotName: name, slotToken: token}
	n := 0
	for _, p := range parts {
		n += len(p.lit) + len(in[p.slot])
	}
	var b strings.Builder
	b.Grow(n)
	for _, p := range parts {
		b.WriteString(p.lit)
		b.WriteString(in[p.slot])
	}
	return b.String()
}

// Placeholders: letters and digits only, which no escaping changes.
const (
	namePlaceholder  = "CMoptinNAME7f3a9c2e"
	tokenPlaceholder = "CMoptinTOKEN7f3a9c2e"
	// maxConfirmations bounds the cached mails; the cache starts afresh when full.
	maxConfirmations = 256
)

// nameEscaper escapes a name as html/template does in text.
var nameEscaper = htmltemplate.Must(htmltemplate.New("n").Parse("{{.}}"))

func newConfirmations(pages *templates.Renderer) *confirmations {
	return &confirmations{pages: pages, m: map[string]*cachedMail{}}
}

// render returns the confirmation mail in lang for name, lists (localised), the link
// prefix+token (token of letters, digits, '-', '_' and '.') and expires.
func (c *confirmations) render(lang, name string, lists []preferences.List, prefix, token string, expires time.Time) (templates.Email, error) {
	var key strings.Builder
	key.WriteString(lang + "\x00" + prefix + "\x00" + strconv.FormatInt(expires.Unix()/60, 10) + "\x00" + strconv.FormatBool(name != ""))
	for _, l := range lists {
		key.WriteString("\x00" + l.ID + "\x01" + l.Name + "\x01" + l.Purpose)
	}
	c.mu.Lock()
	e := c.m[key.String()]
	c.mu.Unlock()
	if e == nil {
		var shown string
		if name != "" {
			shown = namePlaceholder
		}
		r, err := c.pages.Email(lang, "optin", optinMail{Name: shown, Lists: lists, ConfirmURL: prefix + tokenPlaceholder, Expires: expires})
		if err != nil {
			return templates.Email{}, err
		}
		e = &cachedMail{subject: cut(r.Subject), html: cut(r.HTML), text: cut(r.Text)}
		c.mu.Lock()
		if len(c.m) >= maxConfirmations {
			clear(c.m)
		}
		c.m[key.String()] = e
		c.mu.Unlock()
	}
	escaped := name
	if name != "" {
		var b strings.Builder
		if err := nameEscaper.Execute(&b, name); err != nil {
			return templates.Email{}, err
		}
		escaped = b.String()
	}
	return templates.Email{Subject: fill(e.subject, name, token), HTML: fill(e.html, escaped, token), Text: fill(e.text, name, token)}, nil
}
