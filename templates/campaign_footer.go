package templates

import (
	"encoding/json"
	"fmt"
	"html"
	"strings"
	"sync"
)

// Footer is what every campaign message carries whatever its template contains.
type Footer struct {
	Lang             string // language of the footer ("en", "fr", or a locale matching one); empty: the subscriber's locale
	UnsubscribeURL   string // one-click unsubscribe page; empty: CampaignData.UnsubscribeURL
	PreferencesURL   string // preference centre; empty: CampaignData.PreferencesURL
	PostalAddress    string // the sender's postal address, lines separated by newlines; shown when set
	Company          string // the sender's name, shown when set
	TrackingPixelURL string // when set, a 1×1 image ending the HTML part
}

// The footer of the HTML part is written piece by piece rather than by html/template,
// as it is rendered for every recipient; everything in it is escaped by writeHTML.
// Everything is styled inline, as mail clients drop <style> blocks.
const (
	footerOpen = "\n<table role=\"presentation\" width=\"100%\" cellpadding=\"0\" cellspacing=\"0\" border=\"0\" style=\"width:100%;border-collapse:collapse;\">" +
		"<tr><td align=\"center\" style=\"padding:24px 16px;font-family:Arial,Helvetica,sans-serif;font-size:12px;line-height:18px;color:#6b7580;\">\n" +
		"<p style=\"margin:0 0 8px;\">"
	footerLinkOpen  = "</p>\n<p style=\"margin:0 0 8px;\"><a href=\""
	footerLinkStyle = "\" style=\"color:#6b7580;text-decoration:underline;\">"
	footerLinkSep   = "</a> &middot; <a href=\""
	footerAddress   = "</a></p>\n<p style=\"margin:0;\">"
	footerClose     = "</p>\n</td></tr></table>\n"
	footerPixelOpen = "<img src=\""
	footerPixelEnd  = "\" width=\"1\" height=\"1\" alt=\"\" style=\"display:block;width:1px;height:1px;border:0;\">\n"
)

type footerLang struct {
	whyPre, whyPost, whyAnon string // why: whyPre COMPANY whyPost, or whyAnon
	unsubscribe, preferences string // link texts, escaped for HTML
	unsubLine, prefsLine     string // "Unsubscribe: " before the URL in the text part
}

// footers are read once from the embedded catalogs.
var footers = sync.OnceValues(func() (map[string]*footerLang, error) {
	m := map[string]*footerLang{}
	for _, lang := range Languages {
		raw, err := files.ReadFile("locales/" + lang + ".json")
		if err != nil {
			return nil, err
		}
		var cat catalog
		if err := json.Unmarshal(raw, &cat); err != nil {
			return nil, fmt.Errorf("locale %s: %w", lang, err)
		}
		for _, k := range []string{"footer.why", "footer.why_anon", "footer.unsubscribe", "footer.preferences", "footer.link"} {
			if cat[k] == "" {
				return nil, fmt.Errorf("locale %s: no %q", lang, k)
			}
		}
		pre, post, ok := strings.Cut(cat["footer.why"], "%s")
		if !ok {
			return nil, fmt.Errorf("locale %s: footer.why has no %%s", lang)
		}
		m[lang] = &footerLang{whyPre: pre, whyPost: post, whyAnon: cat["footer.why_anon"],
			unsubscribe: html.EscapeString(cat["footer.unsubscribe"]), preferences: html.EscapeString(cat["footer.preferences"]),
			unsubLine: fmt.Sprintf(cat["footer.link"], cat["footer.unsubscribe"], ""),
			prefsLine: fmt.Sprintf(cat["footer.link"], cat["footer.preferences"], "")}
	}
	return m, nil
})

func footerFor(lang string) (*footerLang, error) {
	m, err := footers()
	if err != nil {
		return nil, err
	}
	if fl, ok := m[lang]; ok {
		return fl, nil
	}
	return m[Negotiate(lang, "")], nil
}

// writeWhy writes why the recipient gets the message, through escape.
func (fl *footerLang) writeWhy(b *strings.Builder, company string, escape func(string) string) {
	if company = strings.TrimSpace(company); company == "" {
		b.WriteString(escape(fl.whyAnon))
		return
	}
	b.WriteString(escape(fl.whyPre))
	b.WriteString(escape(company))
	b.WriteString(escape(fl.whyPost))
}

// eachAddressLine calls fn with the company and each line of the postal address, or
// not at all when there is no postal address.
func eachAddressLine(f Footer, fn func(first bool, line string)) {
	if strings.TrimSpace(f.PostalAddress) == "" {
		return
	}
	first := true
	if c := strings.TrimSpace(f.Company); c != "" {
		fn(true, c)
		first = false
	}
	for l := range strings.SplitSeq(f.PostalAddress, "\n") {
		if l = strings.TrimSpace(l); l != "" {
			fn(first, l)
			first = false
		}
	}
}

// writeHTML writes the footer of the HTML part.
func (fl *footerLang) writeHTML(b *strings.Builder, f Footer) {
	b.WriteString(footerOpen)
	fl.writeWhy(b, f.Company, html.EscapeString)
	b.WriteString(footerLinkOpen)
	writeURLAttr(b, f.UnsubscribeURL)
	b.WriteString(footerLinkStyle)
	b.WriteString(fl.unsubscribe)
	b.WriteString(footerLinkSep)
	writeURLAttr(b, f.PreferencesURL)
	b.WriteString(footerLinkStyle)
	b.WriteString(fl.preferences)
	if strings.TrimSpace(f.PostalAddress) == "" {
		b.WriteString("</a>")
	} else {
		b.WriteString(footerAddress)
		eachAddressLine(f, func(first bool, l string) {
			if !first {
				b.WriteString("<br>")
			}
			b.WriteString(html.EscapeString(l))
		})
	}
	b.WriteString(footerClose)
	if f.TrackingPixelURL != "" {
		b.WriteString(footerPixelOpen)
		writeURLAttr(b, f.TrackingPixelURL)
		b.WriteString(footerPixelEnd)
	}
}

// writeURLAttr writes u for a double-quoted attribute as html/template writes
// href="{{.}}": a URL with a scheme other than http, https or mailto becomes
// "#ZgotmplZ", bytes that may not appear in a URL are percent-encoded, and what HTML
// would read otherwise is escaped. It is the direct path's chain of escapers
// (campaign_fast.go), so that the footer and the templates escape URLs alike.
func writeURLAttr(b *strings.Builder, u string) {
	var a, c [256]byte // room for the footer's URLs on the stack
	filtered := appendURLFiltered(a[:0], u)
	normalized := appendURLNormalized(c[:0], filtered)
	b.Write(appendHTMLEscaped(a[:0], normalized))
}

// writeText writes the footer of the text part, after the "-- " line that mail clients
// know ends a message, and leave out of replies.
func (fl *footerLang) writeText(b *strings.Builder, f Footer) {
	b.WriteString("-- \n")
	fl.writeWhy(b, f.Company, func(s string) string { return s })
	b.WriteString("\n")
	b.WriteString(fl.unsubLine)
	b.WriteString(f.UnsubscribeURL)
	b.WriteString("\n")
	b.WriteString(fl.prefsLine)
	b.WriteString(f.PreferencesURL)
	b.WriteString("\n")
	eachAddressLine(f, func(_ bool, l string) {
		b.WriteString(l)
		b.WriteString("\n")
	})
}
