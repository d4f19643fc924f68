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
	m     map[string]templates.Email
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
	return &confirmations{pages: pages, m: map[string]templates.Email{}}
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
	e, ok := c.m[key.String()]
	c.mu.Unlock()
	if !ok {
		var shown string
		if name != "" {
			shown = namePlaceholder
		}
		var err error
		e, err = c.pages.Email(lang, "optin", optinMail{Name: shown, Lists: lists, ConfirmURL: prefix + tokenPlaceholder, Expires: expires})
		if err != nil {
			return templates.Email{}, err
		}
		c.mu.Lock()
		if len(c.m) >= maxConfirmations {
			clear(c.m)
		}
		c.m[key.String()] = e
		c.mu.Unlock()
	}
	var escaped strings.Builder
	if err := nameEscaper.Execute(&escaped, name); err != nil {
		return templates.Email{}, err
	}
	// The token first: a name that spells the token's placeholder stays as typed.
	fill := func(s, n string) string {
		return strings.ReplaceAll(strings.ReplaceAll(s, tokenPlaceholder, token), namePlaceholder, n)
	}
	return templates.Email{Subject: fill(e.Subject, name), HTML: fill(e.HTML, escaped.String()), Text: fill(e.Text, name)}, nil
}
