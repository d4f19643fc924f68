package mailer

import (
	"bytes"
	"crypto/rand"
	"errors"
	"fmt"
	"mime"
	"net/mail"
	"slices"
	"strings"
	"sync/atomic"
	"time"

	"golang.org/x/net/idna"
)

// Message is one email to one recipient. Callers fill it in plain strings; Send
// validates it, builds the MIME message and leaves the struct unchanged.
type Message struct {
	// From is the author, e.g. "Newsletter <news@example.org>".
	From string
	// To is the single recipient, e.g. "Ana <ana@example.org>"; it is also the envelope
	// recipient (RCPT TO).
	To string
	// ToName, when set, is the recipient's display name, and To their bare address
	// ("ana@example.org"): the To field is made from the two as net/mail writes it,
	// sparing a parse of a field the caller would have just written (a campaign's
	// recipients, one message each).
	ToName string
	// ReturnPath is the envelope sender (MAIL FROM) where bounces go, e.g. a VERP address;
	// empty means From's address.
	ReturnPath string
	// Subject may contain any Unicode; it is RFC 2047-encoded when needed.
	Subject string
	// Text and HTML are the bodies; at least one must be non-empty. With both the message
	// is multipart/alternative.
	Text string
	HTML string
	// Headers are extra header fields such as List-Unsubscribe, List-Unsubscribe-Post and
	// List-Id. Fields this struct controls (From, To, Cc, Bcc, Subject, Date, Message-ID,
	// Return-Path, MIME-Version, Content-*, DKIM-Signature) are refused.
	Headers map[string]string
	// MessageID is the Message-ID, with or without angle brackets; empty means a new
	// unique <random@domain-of-From>.
	MessageID string
	// Date is the Date header; zero means the Sender's clock now.
	Date time.Time
}

// reservedHeaders are set from Message fields or by the MIME writer; letting Headers set
// them would yield duplicate or contradictory fields. Names are compared without case.
var reservedHeaders = []string{
	"from", "to", "cc", "bcc", "subject", "date", "message-id", "return-path", "mime-version",
	"content-type", "content-transfer-encoding", "content-disposition", "dkim-signature", "sender",
}

// reserved reports whether name is one of reservedHeaders, in any case.
func reserved(name string) bool {
	for _, r := range reservedHeaders {
		if len(r) == len(name) && strings.EqualFold(r, name) {
			return true
		}
	}
	return false
}

// envelope is what the SMTP exchange needs besides the content.
type envelope struct {
	from string // "<addr>" for MAIL FROM
	to   string // "<addr>" for RCPT TO
	// domain is the From address's domain, lower case, A-labels: it picks the DKIM key.
	domain string
}

// noCRLF refuses CR and LF in a header field.
func noCRLF(field, v string) error {
	if hasCRLF(v) {
		return fmt.Errorf("%w: %s", ErrHeaderInjection, field)
	}
	return nil
}

// hasCRLF reports whether s holds a CR or an LF, with the vector byte search: it runs
// on every header of every message.
func hasCRLF(s string) bool {
	return strings.IndexByte(s, '\n') >= 0 || strings.IndexByte(s, '\r') >= 0
}

// address is a parsed address: its addr-spec, with an IDN domain as its A-label so
// relays without SMTPUTF8 accept it, and its text in a header field.
type address struct {
	spec  string // the mail.Address's Address
	field string // the mail.Address's String()
}

// parseAddr parses one RFC 5322 address.
func parseAddr(field, v string) (address, error) {
	if isDotAtomAddr(v) {
		// What net/mail returns for it, without its parser: a campaign's recipients
		// are such addresses, one per message.
		return address{spec: v, field: "<" + v + ">"}, nil
	}
	if err := noCRLF(field, v); err != nil {
		return address{}, err
	}
	if strings.TrimSpace(v) == "" {
		return address{}, fmt.Errorf("%s: empty address", field)
	}
	a, err := mail.ParseAddress(v)
	if err != nil {
		return address{}, fmt.Errorf("%s: bad address %q: %w", field, v, err)
	}
	at := strings.LastIndexByte(a.Address, '@')
	if at <= 0 || at == len(a.Address)-1 {
		return address{}, fmt.Errorf("%s: bad address %q", field, v)
	}
	if domain := a.Address[at+1:]; !isASCII(domain) {
		ascii, err := idna.Lookup.ToASCII(domain)
		if err != nil {
			return address{}, fmt.Errorf("%s: bad domain %q: %w", field, domain, err)
		}
		a.Address = a.Address[:at+1] + ascii
	}
	return address{spec: a.Address, field: a.String()}, nil
}

// isDotAtomAddr reports whether v is a bare addr-spec whose local part and domain are
// both dot-atoms of ASCII atext (RFC 5322 §3.2.3, §3.4.1): an address net/mail returns
// unchanged, with no name, that needs no quoting and no IDNA.
func isDotAtomAddr(v string) bool {
	at := strings.IndexByte(v, '@')
	return at > 0 && isDotAtom(v[:at]) && isDotAtom(v[at+1:])
}

func isDotAtom(s string) bool {
	if s == "" || s[0] == '.' || s[len(s)-1] == '.' {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == '.':
			if s[i-1] == '.' {
				return false
			}
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9':
		case strings.IndexByte("!#$%&'*+-/=?^_`{|}~", c) >= 0:
		default:
			return false
		}
	}
	return true
}

// fromCache keeps the last From parsed: a campaign's messages share it.
var fromCache atomic.Pointer[parsedFrom]

type parsedFrom struct {
	in   string
	addr address
}

// parseFrom is parseAddr("From", v), from fromCache when v was the last From seen.
func parseFrom(v string) (address, error) {
	if p := fromCache.Load(); p != nil && p.in == v {
		return p.addr, nil
	}
	a, err := parseAddr("From", v)
	if err != nil {
		return address{}, err
	}
	fromCache.Store(&parsedFrom{in: v, addr: a})
	return a, nil
}

func isASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] >= 0x80 {
			return false
		}
	}
	return true
}

// validHeaderName reports whether name is an RFC 5322 field-name: printable ASCII
// without a colon.
func validHeaderName(name string) bool {
	if name == "" {
		return false
	}
	for i := 0; i < len(name); i++ {
		if c := name[i]; c < 33 || c > 126 || c == ':' {
			return false
		}
	}
	return true
}

// recipient is the To address, with ToName as its display name when set.
func (m *Message) recipient() (address, error) {
	if m.ToName == "" {
		return parseAddr("To", m.To)
	}
	field := (&mail.Address{Name: m.ToName, Address: m.To}).String()
	if !isDotAtomAddr(m.To) {
		return parseAddr("To", field) // quoting, IDNA and the checks of the general case
	}
	return address{spec: m.To, field: field}, nil
}

// build validates m and renders it, CRLF-terminated, into buf. It returns the envelope.
// Every error it returns is permanent: the same message can never succeed.
func (m *Message) build(buf *bytes.Buffer, now time.Time) (envelope, error) {
	from, err := parseFrom(m.From)
	if err != nil {
		return envelope{}, err
	}
	to, err := m.recipient()
	if err != nil {
		return envelope{}, err
	}
	ret := from
	if m.ReturnPath != "" {
		if ret, err = parseAddr("ReturnPath", m.ReturnPath); err != nil {
			return envelope{}, err
		}
	}
	if err := noCRLF("Subject", m.Subject); err != nil {
		return envelope{}, err
	}
	if err := noCRLF("MessageID", m.MessageID); err != nil {
		return envelope{}, err
	}
	for k, v := range m.Headers {
		if hasCRLF(k) {
			return envelope{}, fmt.Errorf("header name %q: %w", k, ErrHeaderInjection)
		}
		if err := noCRLF(k, v); err != nil {
			return envelope{}, err
		}
		if !validHeaderName(k) {
			return envelope{}, fmt.Errorf("bad header name %q", k)
		}
		if reserved(k) {
			return envelope{}, fmt.Errorf("header %q is set from the Message's fields", k)
		}
	}
	if m.Text == "" && m.HTML == "" {
		return envelope{}, errors.New("message has neither Text nor HTML")
	}

	id := strings.TrimSuffix(strings.TrimPrefix(strings.TrimSpace(m.MessageID), "<"), ">")
	if id == "" {
		domain := from.spec[strings.LastIndexByte(from.spec, '@')+1:]
		id = rand.Text() + "@" + domain
	} else if strings.ContainsAny(id, "<> \t") || !strings.Contains(id, "@") {
		return envelope{}, fmt.Errorf("bad MessageID %q; want <left@right>", m.MessageID)
	}
	date := m.Date
	if date.IsZero() {
		date = now
	}

	// The fields below are written in pieces, not concatenated first: this runs for
	// every message of a campaign.
	buf.WriteString("Date: ")
	buf.Write(date.AppendFormat(buf.AvailableBuffer(), time.RFC1123Z))
	buf.WriteString("\r\n")
	writeField(buf, "From", from.field)
	writeField(buf, "To", to.field)
	buf.WriteString("Message-ID: <")
	// No space to fold at: a given id was checked above, and a made one is base32
	// and the domain of the From, which parsed as a dot-atom or an IDNA name.
	buf.WriteString(id)
	buf.WriteString(">\r\n")
	writeField(buf, "Subject", encodeText(m.Subject))
	var room [8]string // a campaign's headers, without an allocation
	keys := room[:0]
	for k := range m.Headers {
		keys = append(keys, k)
	}
	slices.Sort(keys) // one message, one encoding: DKIM and tests see the same bytes
	for _, k := range keys {
		writeField(buf, k, encodeText(m.Headers[k]))
	}
	writeField(buf, "MIME-Version", "1.0")
	switch {
	case m.Text != "" && m.HTML != "":
		boundary := rand.Text()
		buf.WriteString(`Content-Type: multipart/alternative; boundary="`)
		buf.WriteString(boundary) // 26 bytes of base32: the line stays short
		buf.WriteString("\"\r\n\r\n")
		for _, part := range [2]struct{ typ, body string }{{"text/plain", m.Text}, {"text/html", m.HTML}} {
			buf.WriteString("--")
			buf.WriteString(boundary)
			buf.WriteString("\r\n")
			writePart(buf, part.typ, part.body)
			buf.WriteString("\r\n")
		}
		buf.WriteString("--")
		buf.WriteString(boundary)
		buf.WriteString("--\r\n")
	case m.HTML != "":
		writePart(buf, "text/html", m.HTML)
		endLine(buf)
	default:
		writePart(buf, "text/plain", m.Text)
		endLine(buf)
	}
	return envelope{from: "<" + ret.spec + ">", to: "<" + to.spec + ">",
		domain: strings.ToLower(from.spec[strings.LastIndexByte(from.spec, '@')+1:])}, nil
}

// maxLine is the line length (without CRLF) header fields are folded to when they
// have room to fold (RFC 5322 §2.1.1).
const maxLine = 78

// writeField writes "Name: value" CRLF, folded at spaces to lines of at most maxLine
// where the value allows it (a long URL without spaces stays whole: RFC 5322 allows
// up to 998).
func writeField(buf *bytes.Buffer, name, value string) {
	buf.WriteString(name)
	buf.WriteString(": ")
	line := len(name) + 2
	for value != "" {
		if line+len(value) <= maxLine {
			buf.WriteString(value)
			break
		}
		cut := strings.LastIndexByte(value[:min(len(value), max(maxLine-line, 1))], ' ')
		if cut <= 0 {
			if cut = strings.IndexByte(value[1:], ' ') + 1; cut <= 0 {
				buf.WriteString(value)
				break
			}
		}
		buf.WriteString(value[:cut])
		buf.WriteString("\r\n")
		value = value[cut:] // keeps the space: it starts the continuation line
		line = 0
	}
	buf.WriteString("\r\n")
}

// encodeText returns s as an unstructured header value: as is when it is printable
// ASCII, else as RFC 2047 encoded-words (each at most 75 bytes, separated by spaces
// that writeField folds at).
func encodeText(s string) string {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < ' ' || c > '~' {
			return mime.QEncoding.Encode("UTF-8", s)
		}
	}
	return s
}

// writePart writes a body part's header and its content: as it is when it may go as
// 7bit (appendSevenBit), else quoted-printable, whose lines stay short and 8-bit safe
// whatever relays offer.
func writePart(buf *bytes.Buffer, typ, body string) {
	buf.WriteString("Content-Type: ")
	buf.WriteString(typ)
	buf.WriteString("; charset=UTF-8\r\nContent-Transfer-Encoding: ")
	if b, ok := appendSevenBit(append(buf.AvailableBuffer(), "7bit\r\n\r\n"...), body); ok {
		buf.Write(b)
		return
	}
	buf.WriteString("quoted-printable\r\n\r\n")
	buf.Write(appendQP(buf.AvailableBuffer(), body))
}

// endLine ends the message with CRLF if it does not already.
func endLine(buf *bytes.Buffer) {
	if b := buf.Bytes(); len(b) < 2 || b[len(b)-2] != '\r' || b[len(b)-1] != '\n' {
		buf.WriteString("\r\n")
	}
}
