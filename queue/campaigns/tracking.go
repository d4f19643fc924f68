package campaigns

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gofiber/fiber/v2"
	"go.etcd.io/bbolt"
	"golang.org/x/net/html"

	"consentmail/preferences/linktoken"
)

// Open and click tracking (contract §2: GET /t/o/{token}, GET /t/c/{token}).
//
// A message carries tracking only when its campaign asks for it (Definition.Track) and
// its recipient consented to tracking when the job was queued (Recipient.Tracking).
// Its HTML part then ends with a 1×1 pixel /t/o/TOKEN, and the href of every <a> whose
// URL is absolute http or https leads through /t/c/TOKEN, except the message's own
// unsubscribe, preference-centre and tracking links. The text part is never rewritten:
// its links are read as well as followed, and a text part has no pixel either.
//
// Tokens are signed with the tracking key (linktoken), for five years:
//
//	open:  "track-open"  campaign subscriber
//	click: "track-click" campaign subscriber URL
//
// The click token carries the very URL it leads to, so the redirect can go nowhere
// else; a link whose token would pass linktoken.MaxLen (a URL of some 650 bytes) is
// left as it is.

const (
	purposeOpen  = "track-open"
	purposeClick = "track-click"
)

// TrackingLinkTTL is how long tracking links work: as long as the unsubscribe link
// beside them. A click on an expired link still leads to its URL, uncounted.
const TrackingLinkTTL = linktoken.UnsubscribeLinkTTL

// OpenToken returns the token of the open pixel of one campaign message.
func OpenToken(s *linktoken.Signer, campaign, subscriber string, now time.Time) string {
	return s.Sign(purposeOpen, now.Add(TrackingLinkTTL), campaign, subscriber)
}

// ClickToken returns the token of a click link of one campaign message to target: an
// absolute http or https URL without spaces, controls or non-ASCII bytes (the click
// route refuses any other).
func ClickToken(s *linktoken.Signer, campaign, subscriber, target string, now time.Time) string {
	return s.Sign(purposeClick, now.Add(TrackingLinkTTL), campaign, subscriber, target)
}

// trackLinks rewrites the links of doc, one recipient's HTML part, to count clicks.
func (w *Worker) trackLinks(doc, campaign, subscriber string, now time.Time) string {
	base := w.cfg.BaseURL
	var signed [][2]string // a URL linked again gets the same link: one signature
	return rewriteLinks(doc, func(href string) (string, bool) {
		u, ok := linkTarget(href)
		if !ok {
			return "", false
		}
		for _, s := range signed {
			if s[0] == u {
				return s[1], true
			}
		}
		if own, ok := strings.CutPrefix(u, base); ok && len(own) >= 3 && own[0] == '/' && own[2] == '/' &&
			(own[1] == 'u' || own[1] == 'p' || own[1] == 't') {
			return "", false // unsubscribe and preference links stay direct; tracking links are not wrapped twice
		}
		token := ClickToken(w.track, campaign, subscriber, u, now)
		if len(token) > linktoken.MaxLen {
			return "", false
		}
		link := base + "/t/c/" + token
		signed = append(signed, [2]string{u, link})
		return link, true
	})
}

// linkTarget returns the URL a browser follows for href, an attribute value already
// unescaped, when it is absolute http or https: leading and trailing spaces and
// controls dropped, tabs and newlines removed (as the URL standard does), and the
// bytes a Location header cannot carry percent-encoded.
func linkTarget(href string) (string, bool) {
	u := strings.TrimFunc(href, func(r rune) bool { return r <= ' ' })
	if strings.ContainsAny(u, "\t\n\r") {
		b := make([]byte, 0, len(u))
		for i := 0; i < len(u); i++ {
			if c := u[i]; c != '\t' && c != '\n' && c != '\r' {
				b = append(b, c)
			}
		}
		u = string(b)
	}
	if !(hasPrefixFold(u, "http://") && len(u) > len("http://") || hasPrefixFold(u, "https://") && len(u) > len("https://")) {
		return "", false
	}
	clean := true
	for i := 0; i < len(u); i++ {
		if u[i] <= ' ' || u[i] >= 0x7f {
			clean = false
			break
		}
	}
	if clean {
		return u, true
	}
	const hex = "0123456789ABCDEF"
	var b strings.Builder
	b.Grow(len(u) + 16)
	for i := 0; i < len(u); i++ {
		if c := u[i]; c <= ' ' || c >= 0x7f {
			b.Write([]byte{'%', hex[c>>4], hex[c&15]})
		} else {
			b.WriteByte(c)
		}
	}
	return b.String(), true
}

// isLinkTarget reports whether u is what linkTarget returns for it.
func isLinkTarget(u string) bool {
	t, ok := linkTarget(u)
	return ok && t == u
}

func hasPrefixFold(s, prefix string) bool {
	if len(s) < len(prefix) {
		return false
	}
	for i := 0; i < len(prefix); i++ {
		if lowerASCII(s[i]) != prefix[i] {
			return false
		}
	}
	return true
}

func lowerASCII(c byte) byte {
	if 'A' <= c && c <= 'Z' {
		return c + 'a' - 'A'
	}
	return c
}

// rewriteLinks returns doc with the href of each <a> start tag replaced by what
// rewrite returns for its value (unescaped, as a browser reads it) when it returns
// true; every other byte is kept. It runs for every tracked message, so it does not
// build a tree: it reads doc as golang.org/x/net/html's tokenizer does (tags and
// their attributes, quoted or not, comments, the raw text of <style>, <title> and the
// like, in which "<a" is no tag), and the tests hold it to that tokenizer. Unlike it,
// a <script> ends at its first "</script" (mail clients drop scripts anyway).
func rewriteLinks(doc string, rewrite func(href string) (string, bool)) string {
	var b strings.Builder
	copied := 0 // doc[:copied] is in b
	n := len(doc)
	i := 0
scan:
	for {
		j := strings.IndexByte(doc[i:], '<')
		if j < 0 || i+j+1 >= n {
			break
		}
		p := i + j
		switch c := doc[p+1]; {
		case isLetter(c):
			e := p + 2
			for e < n && !isSpace(doc[e]) && doc[e] != '/' && doc[e] != '>' {
				e++
			}
			name := doc[p+1 : e]
			if len(name) == 1 && lowerASCII(name[0]) == 'a' {
				t, ok := scanTag(doc, p+1)
				if !ok {
					break scan // the tokenizer drops a tag cut by the end
				}
				i = t.end
				if t.hrefStart < 0 {
					continue
				}
				if to, ok := rewrite(attrValue(doc[t.hrefStart:t.hrefEnd], doc[p:t.end])); ok {
					if copied == 0 {
						b.Grow(n + 512)
					}
					from, upto := t.hrefStart, t.hrefEnd
					if t.quoted {
						from, upto = from-1, upto+1
					}
					b.WriteString(doc[copied:from])
					b.WriteByte('"')
					writeAttr(&b, to)
					b.WriteByte('"')
					copied = upto
				}
				continue
			}
			if i = quickTagEnd(doc, e); i < 0 {
				t, ok := scanTag(doc, p+1)
				if !ok {
					break scan
				}
				i = t.end
			}
			if raw := rawTextTag(name); raw != "" {
				if raw == "plaintext" {
					break scan
				}
				if i = rawTextEnd(doc, i, raw); i < 0 {
					break scan
				}
			}
		case c == '/':
			switch {
			case p+2 >= n:
				break scan
			case doc[p+2] == '>':
				i = p + 3
			case isLetter(doc[p+2]):
				if i = quickTagEnd(doc, p+3); i >= 0 {
					break
				}
				t, ok := scanTag(doc, p+2)
				if !ok {
					break scan
				}
				i = t.end
			default:
				if i = closeAngle(doc, p+2); i < 0 {
					break scan
				}
			}
		case c == '!' && strings.HasPrefix(doc[p+2:], "--"):
			if i = commentEnd(doc, p+4); i < 0 {
				break scan
			}
		case c == '!' || c == '?': // doctype, bogus comment
			if i = closeAngle(doc, p+2); i < 0 {
				break scan
			}
		default:
			i = p + 1
		}
	}
	if copied == 0 {
		return doc
	}
	b.WriteString(doc[copied:])
	return b.String()
}

// quickTagEnd returns the index after the '>' that ends a tag read up to doc[s] when
// no quote comes before it, -1 when scanTag must read the tag: without quotes, no
// '>' can be inside an attribute.
func quickTagEnd(doc string, s int) int {
	for k := s; k < len(doc); k++ {
		switch doc[k] {
		case '>':
			return k + 1
		case '"', '\'':
			return -1
		}
	}
	return -1
}

// tagScan is a start or end tag of a document: where it ends, and the value of its
// first href attribute.
type tagScan struct {
	end                int // just after its '>'
	hrefStart, hrefEnd int // the value of its first href; hrefStart < 0 when none or empty
	quoted             bool
}

// scanTag reads the tag whose name starts at doc[s] as the tokenizer's readTag does;
// it returns false when doc ends inside it.
func scanTag(doc string, s int) (t tagScan, ok bool) {
	t.hrefStart = -1
	n := len(doc)
	i := s + 1
	for i < n && !isSpace(doc[i]) && doc[i] != '/' && doc[i] != '>' {
		i++
	}
	seenHref := false
	for {
		for i < n && isSpace(doc[i]) {
			i++
		}
		if i >= n {
			return t, false
		}
		if doc[i] == '>' {
			t.end = i + 1
			return t, true
		}
		// The name: an '=' first is part of it.
		ks := i
		for i < n {
			c := doc[i]
			if c == '=' && i == ks {
				i++
				continue
			}
			if c == '=' || c == '/' || c == '>' || isSpace(c) {
				break
			}
			i++
		}
		key := doc[ks:i]
		for i < n && isSpace(doc[i]) {
			i++
		}
		if i >= n {
			return t, false
		}
		vs, ve, quoted := -1, -1, false
		switch doc[i] {
		case '/':
			i++
		case '=':
			for i++; i < n && isSpace(doc[i]); i++ {
			}
			if i >= n {
				return t, false
			}
			switch q := doc[i]; q {
			case '>': // an empty value
			case '"', '\'':
				k := strings.IndexByte(doc[i+1:], q)
				if k < 0 {
					return t, false
				}
				vs, ve, quoted = i+1, i+1+k, true
				i = ve + 1
			default:
				vs = i
				for i < n && !isSpace(doc[i]) && doc[i] != '>' {
					i++
				}
				ve = i
			}
		}
		if !seenHref && len(key) == 4 && hasPrefixFold(key, "href") {
			seenHref = true // a later href is ignored, as browsers do
			if vs >= 0 {
				t.hrefStart, t.hrefEnd, t.quoted = vs, ve, quoted
			}
		}
	}
}

// attrValue returns the attribute value raw unescaped as the tokenizer's TagAttr does.
// The usual cases are done here; others (numeric and named character references
// besides &amp;, NUL) ask the tokenizer about tag, the whole tag raw comes from.
func attrValue(raw, tag string) string {
	if strings.IndexByte(raw, 0) < 0 {
		if v, ok := unescapeSimple(raw); ok {
			return v
		}
	}
	z := html.NewTokenizer(strings.NewReader(tag))
	if tt := z.Next(); tt != html.StartTagToken && tt != html.SelfClosingTagToken {
		return ""
	}
	for more := true; more; {
		var k, v []byte
		k, v, more = z.TagAttr()
		if string(k) == "href" {
			return string(v)
		}
	}
	return ""
}

// unescapeSimple unescapes s when its only character references are &amp; and
// ampersands that stay as they are in an attribute ("&" not followed by a name, or by
// a name and "=", as in a query string); it returns false for anything else.
func unescapeSimple(s string) (string, bool) {
	if strings.IndexByte(s, '\r') >= 0 {
		return "", false
	}
	var b []byte
	from := 0 // s[from:] is not in b yet
	for i := 0; ; {
		k := strings.IndexByte(s[i:], '&')
		if k < 0 {
			break
		}
		i += k + 1
		rest := s[i:]
		if strings.HasPrefix(rest, "amp;") {
			if b == nil {
				b = make([]byte, 0, len(s))
			}
			b = append(b, s[from:i]...)
			i += len("amp;")
			from = i
			continue
		}
		k = 0
		for k < len(rest) && isAlnum(rest[k]) {
			k++
		}
		switch {
		case k == 0 && (k == len(rest) || rest[0] != '#'):
		case k > 0 && k < len(rest) && rest[k] == '=':
		default:
			return "", false
		}
	}
	if b == nil {
		return s, true
	}
	return string(append(b, s[from:]...)), true
}

// rawTextTag returns the lower-case name of a tag whose content the tokenizer reads
// as text up to its end tag, "" for others.
func rawTextTag(name string) string {
	if len(name) < 3 || len(name) > 9 {
		return ""
	}
	switch lowerASCII(name[0]) {
	case 'i', 'n', 'p', 's', 't', 'x':
	default:
		return ""
	}
	for _, t := range [...]string{"iframe", "noembed", "noframes", "noscript", "plaintext", "script", "style", "textarea", "title", "xmp"} {
		if len(t) == len(name) && hasPrefixFold(name, t) {
			return t
		}
	}
	return ""
}

// rawTextEnd returns the index of the "</name" that ends raw text starting at doc[from],
// or -1 when the text runs to the end.
func rawTextEnd(doc string, from int, name string) int {
	for i := from; ; {
		k := strings.IndexByte(doc[i:], '<')
		if k < 0 {
			return -1
		}
		p := i + k
		if e := p + 2 + len(name); e < len(doc) && doc[p+1] == '/' && hasPrefixFold(doc[p+2:], name) {
			if c := doc[e]; isSpace(c) || c == '/' || c == '>' {
				return p
			}
		}
		i = p + 1
	}
}

// commentEnd returns the index after the comment whose text starts at doc[s] (after
// "<!--"), or -1 when it runs to the end; as the tokenizer's readComment.
func commentEnd(doc string, s int) int {
	dashes, beginning := 0, true
	for i := s; i < len(doc); i++ {
		switch doc[i] {
		case '-':
			dashes++
			continue
		case '>':
			if dashes >= 2 || beginning {
				return i + 1
			}
		case '!':
			if dashes >= 2 {
				if i++; i >= len(doc) {
					return -1
				}
				switch doc[i] {
				case '>':
					return i + 1
				case '-':
					dashes, beginning = 1, false
					continue
				}
			}
		}
		dashes, beginning = 0, false
	}
	return -1
}

// closeAngle returns the index after the first '>' from doc[s], or -1.
func closeAngle(doc string, s int) int {
	if k := strings.IndexByte(doc[s:], '>'); k >= 0 {
		return s + k + 1
	}
	return -1
}

func isSpace(c byte) bool  { return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' }
func isLetter(c byte) bool { return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' }
func isAlnum(c byte) bool  { return isLetter(c) || '0' <= c && c <= '9' }

// writeAttr writes s for a double-quoted attribute.
func writeAttr(b *strings.Builder, s string) {
	if !strings.ContainsAny(s, `&"`) {
		b.WriteString(s)
		return
	}
	for i := 0; i < len(s); i++ {
		switch c := s[i]; c {
		case '&':
			b.WriteString("&amp;")
		case '"':
			b.WriteString("&#34;")
		default:
			b.WriteByte(c)
		}
	}
}

// TrackingConsent tells whether a subscriber consents to tracking now;
// *preferences.Store is one.
type TrackingConsent interface {
	Tracking(ctx context.Context, subscriber string) bool
}

// TrackingRoutes serves the open pixel and the click redirect. A hit counts only when
// its token is valid and its subscriber still consents to tracking; it counts in its
// campaign's opens or clicks when a person made it, in machine_opens or machine_clicks
// when MachineHit says a machine did (a HEAD, Apple's privacy proxy, a scanner). Counts
// are kept in memory and written by the Engine about every second (Engine.FlushHits);
// only a person's hit is activity for the retention policy.
type TrackingRoutes struct {
	engine  *Engine
	consent TrackingConsent
	signer  *linktoken.Signer
	now     func() time.Time
	recent  recentClicks
}

// NewTrackingRoutes returns the handler; signer must be keyed for tracking links
// (the workers' tracking signer).
func NewTrackingRoutes(engine *Engine, consent TrackingConsent, signer *linktoken.Signer, now func() time.Time) *TrackingRoutes {
	return &TrackingRoutes{engine: engine, consent: consent, signer: signer, now: now}
}

// Routes mounts GET /t/o/{token} and GET /t/c/{token} on r (and HEAD, as Fiber does).
func (h *TrackingRoutes) Routes(r fiber.Router) {
	r.Get("/t/o/:token", h.open)
	r.Get("/t/c/:token", h.click)
}

// hit returns what MachineHit needs to know of the request c, for a token that
// expires at expires.
func (h *TrackingRoutes) hit(c *fiber.Ctx, click bool, now, expires time.Time) Hit {
	ip, _ := netip.ParseAddr(c.IP())
	return Hit{Click: click, Method: c.Method(), UserAgent: c.Get(fiber.HeaderUserAgent), IP: ip,
		SinceSent: now.Sub(expires.Add(-TrackingLinkTTL)), SincePrevClick: -1}
}

// pixelGIF is a transparent 1×1 GIF.
var pixelGIF = []byte("GIF89a\x01\x00\x01\x00\x80\x00\x00\x00\x00\x00\xff\xff\xff" +
	"\x21\xf9\x04\x01\x00\x00\x00\x00\x2c\x00\x00\x00\x00\x01\x00\x01\x00\x00\x02\x02\x44\x01\x00\x3b")

// open answers the pixel whatever the token: a broken image would show in the mail.
func (h *TrackingRoutes) open(c *fiber.Ctx) error {
	now := h.now()
	f, expires, err := h.signer.Verify(c.Params("token"), purposeOpen, now)
	if err == nil && len(f) == 2 && h.consent.Tracking(c.UserContext(), f[1]) {
		if MachineHit(h.hit(c, false, now, expires)) != "" {
			h.engine.hits.add(f[0], hitMachineOpen, 1)
		} else {
			h.engine.hits.add(f[0], hitOpen, 1)
			h.engine.active.add(f[1])
		}
	}
	c.Set(fiber.HeaderContentType, "image/gif")
	c.Set(fiber.HeaderCacheControl, "no-store")
	return c.Send(pixelGIF)
}

// click redirects to the URL signed into the token, and nowhere else. The person did
// click: without consent the redirect is the same, only not counted.
func (h *TrackingRoutes) click(c *fiber.Ctx) error {
	now := h.now()
	f, expires, err := h.signer.Verify(c.Params("token"), purposeClick, now)
	// Only linkTarget's URLs are signed; checking again costs nothing.
	if err != nil && !errors.Is(err, linktoken.ErrExpired) || len(f) != 3 || !isLinkTarget(f[2]) {
		c.Set(fiber.HeaderContentType, fiber.MIMETextPlainCharsetUTF8)
		c.Set(fiber.HeaderCacheControl, "no-store")
		return c.Status(fiber.StatusBadRequest).SendString("This link is broken: it does not lead anywhere.\n" +
			"Ce lien est cassé : il ne mène nulle part.\n")
	}
	if err == nil && h.consent.Tracking(c.UserContext(), f[1]) {
		h.countClick(c, f[0], f[1], f[2], now, expires)
	}
	c.Set(fiber.HeaderReferrerPolicy, "no-referrer")
	c.Set(fiber.HeaderCacheControl, "no-store")
	return c.Redirect(f[2], fiber.StatusFound)
}

// countClick counts a click on target in the message of campaign to subscriber, a
// person's or a machine's. A machine's click on another link of the same message
// within ClickBurst of one counted as a person's shows that one was a machine's too
// (a scanner follows every link): it is moved to the machines.
func (h *TrackingRoutes) countClick(c *fiber.Ctx, campaign, subscriber, target string, now, expires time.Time) {
	machine, movePrev := h.recent.classify(campaign+"\x00"+subscriber, target, h.hit(c, true, now, expires), now)
	if movePrev {
		h.engine.hits.add(campaign, hitClick, -1)
		h.engine.hits.add(campaign, hitMachineClick, 1)
	}
	if machine {
		h.engine.hits.add(campaign, hitMachineClick, 1)
		return
	}
	h.engine.hits.add(campaign, hitClick, 1)
	h.engine.active.add(subscriber)
}

// recentClicks remembers, for ClickBurst, the last click of each message (campaign
// and subscriber) in this process. A burst spread over processes (several web
// servers) is not seen: other rules must then tell the machine.
type recentClicks struct {
	mu     sync.Mutex
	m      map[string]recentClick
	pruned time.Time // when clicks older than ClickBurst were last dropped
}

type recentClick struct {
	at     time.Time
	target string
	person bool // counted as a person's click
}

// classify tells whether hit, a click on target in the message key, is a machine's
// (MachineHit, told the time since the click before on another link), and whether
// the click before, counted as a person's within ClickBurst, must be moved to the
// machines; it remembers the click, made at at, for the next.
func (r *recentClicks) classify(key, target string, hit Hit, at time.Time) (machine, movePrev bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.m == nil {
		r.m = map[string]recentClick{}
	}
	// Only clicks within ClickBurst matter: past a few thousand messages, the old ones
	// are dropped at most once per ClickBurst, so the map holds about two ClickBursts
	// of clicks and a click costs O(1) amortised.
	if len(r.m) >= 4096 && at.Sub(r.pruned) >= ClickBurst {
		r.pruned = at
		for k, v := range r.m {
			if at.Sub(v.at) >= ClickBurst {
				delete(r.m, k)
			}
		}
	}
	prev, ok := r.m[key]
	if ok && prev.target != target && at.Sub(prev.at) >= 0 && at.Sub(prev.at) < ClickBurst {
		hit.SincePrevClick = at.Sub(prev.at)
	}
	machine = MachineHit(hit) != ""
	movePrev = machine && hit.SincePrevClick >= 0 && prev.person
	r.m[key] = recentClick{at: at, target: target, person: !machine}
	return machine, movePrev
}

// The counters of a campaign's hits.
const (
	hitOpen = iota
	hitClick
	hitMachineOpen
	hitMachineClick
	hitKinds
)

// hitCounter holds the hits not yet written, per campaign. Hits only take a read lock
// and an atomic add; the flush swaps the map under the write lock.
type hitCounter struct {
	mu sync.RWMutex
	m  map[string]*hitCount
}

type hitCount [hitKinds]atomic.Int64

func (c *hitCounter) add(campaign string, kind int, n int64) {
	c.mu.RLock()
	h := c.m[campaign]
	if h != nil {
		h[kind].Add(n)
		c.mu.RUnlock()
		return
	}
	c.mu.RUnlock()
	c.mu.Lock()
	defer c.mu.Unlock()
	c.entry(campaign)[kind].Add(n)
}

// entry returns the counts of campaign, made if need be; c.mu is held for writing.
func (c *hitCounter) entry(campaign string) *hitCount {
	h := c.m[campaign]
	if h == nil {
		if c.m == nil {
			c.m = map[string]*hitCount{}
		}
		h = &hitCount{}
		c.m[campaign] = h
	}
	return h
}

// take returns the counts so far and starts afresh.
func (c *hitCounter) take() map[string]*hitCount {
	c.mu.Lock()
	defer c.mu.Unlock()
	m := c.m
	c.m = nil
	return m
}

// putBack adds counts that could not be written to those kept.
func (c *hitCounter) putBack(m map[string]*hitCount) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for id, h := range m {
		e := c.entry(id)
		for k := range h {
			e[k].Add(h[k].Load())
		}
	}
}

// FlushHits adds the opens and clicks counted since the last flush to the campaigns'
// records, in one transaction. Run calls it every second and when it stops; a failed
// write keeps the counts for the next.
func (e *Engine) FlushHits(ctx context.Context) error {
	if ids := e.active.take(); len(ids) > 0 {
		if err := e.book.TouchActivity(ctx, ids); err != nil {
			e.active.putBack(ids)
			return fmt.Errorf("write subscriber activity: %w", err)
		}
	}
	m := e.hits.take()
	if len(m) == 0 {
		return nil
	}
	if err := e.store.addHits(ctx, m); err != nil {
		e.hits.putBack(m)
		return fmt.Errorf("write opens and clicks: %w", err)
	}
	return nil
}

// addHits adds counts to the campaigns' records; those of campaigns gone are dropped.
// UpdatedAt is left alone: the campaign did not change.
func (s *Store) addHits(ctx context.Context, m map[string]*hitCount) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	return s.db.Update(func(tx *bbolt.Tx) error {
		for id, h := range m {
			r, err := getRecord(tx, id)
			if errors.Is(err, ErrCampaignNotFound) {
				continue
			}
			if err != nil {
				return err
			}
			r.Plan.Opens += h[hitOpen].Load()
			r.Plan.Clicks += h[hitClick].Load()
			r.Plan.MachineOpens += h[hitMachineOpen].Load()
			r.Plan.MachineClicks += h[hitMachineClick].Load()
			if err := putRecord(tx, r); err != nil {
				return err
			}
		}
		return nil
	})
}

// activitySet holds the subscribers who opened or clicked since the last flush, for
// the retention policy (an open or a click is activity).
type activitySet struct {
	mu sync.Mutex
	m  map[string]struct{}
}

func (a *activitySet) add(subscriber string) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.m == nil {
		a.m = map[string]struct{}{}
	}
	a.m[subscriber] = struct{}{}
}

func (a *activitySet) take() []string {
	a.mu.Lock()
	defer a.mu.Unlock()
	ids := make([]string, 0, len(a.m))
	for id := range a.m {
		ids = append(ids, id)
	}
	a.m = nil
	return ids
}

func (a *activitySet) putBack(ids []string) {
	for _, id := range ids {
		a.add(id)
	}
}
