package inbound

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/emersion/go-message"
	_ "github.com/emersion/go-message/charset" // reports in ISO-8859-x, Windows-125x…
	"github.com/emersion/go-message/textproto"
)

// ErrNotReport: the message is no delivery-status or feedback report (an
// out-of-office reply, a person writing back, spam).
var ErrNotReport = errors.New("not a delivery-status or feedback report")

// Report is a parsed multipart/report: exactly one of DSN and Feedback is set.
type Report struct {
	DSN      *DSN
	Feedback *Feedback
}

// DSN is an RFC 3464 delivery-status notification.
type DSN struct {
	ReportingMTA string
	Recipients   []DSNRecipient
	// Ref is the token of FeedbackHeader in the returned message or its headers, if any.
	Ref string
}

// DSNRecipient is one per-recipient field group of a DSN.
type DSNRecipient struct {
	FinalRecipient    string
	OriginalRecipient string
	Action            string // failed, delayed, delivered, relayed, expanded
	Status            string // RFC 3463 enhanced code such as 5.1.1
	DiagnosticCode    string
	RemoteMTA         string
}

// Class is the class digit of the status: '5' permanent, '4' transient, '2' success;
// without a valid status it follows Action (failed '5', delayed '4').
func (r DSNRecipient) Class() byte {
	if s := r.Status; len(s) >= 5 && s[1] == '.' && (s[0] == '2' || s[0] == '4' || s[0] == '5') {
		return s[0]
	}
	switch r.Action {
	case "failed":
		return '5'
	case "delayed":
		return '4'
	}
	return '2'
}

// Failure returns the recipient group that reports a failure (a permanent one before a
// transient one) and whether there is one: the one recipient of a VERP return path.
func (d *DSN) Failure() (DSNRecipient, bool) {
	var soft *DSNRecipient
	for i, r := range d.Recipients {
		if r.Action == "delivered" || r.Action == "relayed" || r.Action == "expanded" {
			continue
		}
		switch r.Class() {
		case '5':
			return r, true
		case '4':
			if soft == nil {
				soft = &d.Recipients[i]
			}
		}
	}
	if soft != nil {
		return *soft, true
	}
	return DSNRecipient{}, false
}

// Feedback is an RFC 5965 abuse feedback report.
type Feedback struct {
	FeedbackType     string // abuse, fraud, virus, other, not-spam
	UserAgent        string
	Version          string
	OriginalMailFrom string
	OriginalRcptTo   string
	ArrivalDate      string
	SourceIP         string
	ReportedDomain   string
	// Ref is the token that names campaign and subscriber, from FeedbackHeader in the
	// original message, else from a bounce+TOKEN@ return path or mail-from.
	Ref string
}

// ParseReport reads a multipart/report (RFC 6522) with go-message and returns the
// delivery-status (RFC 3464, and RFC 6533's message/global-delivery-status) or
// feedback report (RFC 5965) it carries. Anything else is ErrNotReport.
func ParseReport(r io.Reader) (*Report, error) {
	e, err := message.Read(r)
	if err != nil && !message.IsUnknownCharset(err) && !message.IsUnknownEncoding(err) {
		return nil, fmt.Errorf("read message: %w", err)
	}
	mt, params, err := e.Header.ContentType()
	if err != nil || mt != "multipart/report" {
		return nil, fmt.Errorf("content type %q: %w", mt, ErrNotReport)
	}
	mr := e.MultipartReader()
	if mr == nil {
		return nil, fmt.Errorf("multipart/report without parts: %w", ErrNotReport)
	}
	var rep Report
	var original textproto.Header
	for {
		p, err := mr.NextPart()
		if err == io.EOF {
			break
		}
		if err != nil && p == nil {
			return nil, fmt.Errorf("read report part: %w", err)
		}
		pt, _, _ := p.Header.ContentType()
		switch pt {
		case "message/delivery-status", "message/global-delivery-status":
			if rep.DSN, err = parseDeliveryStatus(p.Body); err != nil {
				return nil, err
			}
		case "message/feedback-report":
			if rep.Feedback, err = parseFeedback(p.Body); err != nil {
				return nil, err
			}
		case "message/rfc822", "text/rfc822-headers", "message/global", "message/global-headers":
			// Only the header is wanted; a truncated original is common.
			h, err := textproto.ReadHeader(bufio.NewReader(io.LimitReader(p.Body, 1<<20)))
			if err == nil || h.Len() > 0 {
				original = h
			}
		}
	}
	ref := refFrom(original)
	switch {
	case rep.DSN != nil && params["report-type"] != "feedback-report":
		rep.DSN.Ref = ref
		rep.Feedback = nil
	case rep.Feedback != nil:
		if ref == "" {
			ref = BounceToken(rep.Feedback.OriginalMailFrom)
		}
		rep.Feedback.Ref = ref
		rep.DSN = nil
	default:
		return nil, fmt.Errorf("report-type %q without its report part: %w", params["report-type"], ErrNotReport)
	}
	return &rep, nil
}

// parseDeliveryStatus reads the per-message field group, then one group per recipient.
func parseDeliveryStatus(r io.Reader) (*DSN, error) {
	groups, err := fieldGroups(r)
	if err != nil {
		return nil, fmt.Errorf("delivery-status: %w", err)
	}
	if len(groups) < 2 {
		return nil, fmt.Errorf("delivery-status without a recipient: %w", ErrNotReport)
	}
	d := &DSN{ReportingMTA: typed(groups[0].Get("Reporting-MTA"))}
	for _, g := range groups[1:] {
		d.Recipients = append(d.Recipients, DSNRecipient{
			FinalRecipient:    typed(g.Get("Final-Recipient")),
			OriginalRecipient: typed(g.Get("Original-Recipient")),
			Action:            strings.ToLower(firstWord(g.Get("Action"))),
			Status:            firstWord(g.Get("Status")),
			DiagnosticCode:    typed(g.Get("Diagnostic-Code")),
			RemoteMTA:         typed(g.Get("Remote-MTA")),
		})
	}
	return d, nil
}

func parseFeedback(r io.Reader) (*Feedback, error) {
	groups, err := fieldGroups(r)
	if err != nil || len(groups) == 0 {
		return nil, fmt.Errorf("feedback-report: %v: %w", err, ErrNotReport)
	}
	g := groups[0]
	f := &Feedback{FeedbackType: strings.ToLower(firstWord(g.Get("Feedback-Type"))), UserAgent: g.Get("User-Agent"),
		Version: g.Get("Version"), OriginalMailFrom: g.Get("Original-Mail-From"), OriginalRcptTo: g.Get("Original-Rcpt-To"),
		ArrivalDate: g.Get("Arrival-Date"), SourceIP: g.Get("Source-IP"), ReportedDomain: g.Get("Reported-Domain")}
	if f.FeedbackType == "" {
		return nil, fmt.Errorf("feedback-report without Feedback-Type: %w", ErrNotReport)
	}
	return f, nil
}

// fieldGroups reads header-like field groups separated by blank lines (RFC 3464 §2.1).
func fieldGroups(r io.Reader) ([]textproto.Header, error) {
	br := bufio.NewReader(io.LimitReader(r, 1<<20))
	var out []textproto.Header
	for {
		for { // blank lines between and around groups
			b, err := br.Peek(1)
			if err != nil {
				return out, nil
			}
			if b[0] != '\r' && b[0] != '\n' {
				break
			}
			br.ReadByte()
		}
		h, err := textproto.ReadHeader(br)
		if h.Len() > 0 {
			out = append(out, h)
		}
		if err == io.EOF || errors.Is(err, io.ErrUnexpectedEOF) {
			return out, nil
		}
		if err != nil {
			return out, err
		}
	}
}

// typed strips the address or name type of a DSN field: "rfc822; a@b" gives "a@b".
func typed(v string) string {
	if _, rest, ok := strings.Cut(v, ";"); ok {
		return strings.TrimSpace(rest)
	}
	return strings.TrimSpace(v)
}

func firstWord(v string) string {
	if f := strings.Fields(v); len(f) > 0 {
		return f[0]
	}
	return ""
}

// refFrom finds the token naming campaign and subscriber in an original message's
// header: FeedbackHeader, else a bounce+TOKEN@ Return-Path.
func refFrom(h textproto.Header) string {
	if v := strings.TrimSpace(h.Get(FeedbackHeader)); v != "" {
		return v
	}
	return BounceToken(h.Get("Return-Path"))
}

// BounceToken returns TOKEN of an address bounce+TOKEN@…, or "".
func BounceToken(addr string) string {
	addr = strings.Trim(strings.TrimSpace(addr), "<>")
	local, _, ok := strings.Cut(addr, "@")
	if !ok {
		return ""
	}
	if tag, tok, ok := strings.Cut(local, "+"); ok && strings.EqualFold(tag, "bounce") {
		return tok
	}
	return ""
}

// FeedbackHeader is the header in which a campaign message carries its bounce token,
// so that a complaint report quoting the message (RFC 5965) names campaign and
// subscriber even when a provider rewrote the return path.
const FeedbackHeader = "X-Consentmail-Ref"
