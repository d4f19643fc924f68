// Package address is the one place where consentmail decides what an email address
// is: the form it is stored and sent in, the key it is found by, how it is masked for
// roles that may not see it, and how it is redacted from text that may quote it (a
// relay's reply in a log). Signups, imports, rectification, the admin lookup,
// preference links and campaign test sends all call Normalise, so an address typed
// one way at signup is found however it is typed later.
//
// # Normal form
//
// Normalise returns the address with its local part exactly as typed and its domain
// converted to ASCII and lower-cased: an internationalised domain becomes its A-labels
// (ana@bücher.example → ana@xn--bcher-kva.example) through the IDNA lookup profile of
// golang.org/x/net/idna (UTS #46 mapping, so BÜCHER and bücher are one domain), and a
// trailing root dot is dropped. Normalising a normal form returns it unchanged.
//
// # Lookup key
//
// The key is the whole normal form lower-cased, local part included, so Ana@Example.org
// and ana@EXAMPLE.org are one person although mail goes to the local part as typed.
// Indexes are keyed by it and nothing else.
//
// # Limits
//
// Accepted: a dot-atom local part of at most 64 ASCII letters, digits and
// !#$%&'*+/=?^_`{|}~- and a domain of at least two labels (at most 63 bytes each, 253
// in all, a top-level label that is not all digits); at most MaxEmailLen bytes both as
// typed and normalised. Refused with ErrBadEmail: quoted local parts, comments, display
// names, IP-address domains, non-ASCII local parts, and anything with spaces, control
// characters or angle brackets, so an address can never smuggle a header into a message.
// Callers trim surrounding space themselves when their input may carry it.
package address

import (
	"errors"
	"regexp"
	"strings"
	"unicode/utf8"

	"golang.org/x/net/idna"
)

// MaxEmailLen is the longest address accepted (RFC 5321 path limit less the brackets).
const MaxEmailLen = 254

// ErrBadEmail is returned for an address that is not a deliverable mailbox syntax.
var ErrBadEmail = errors.New("not a valid email address")

var idnaProfile = idna.Lookup

// Normalise checks an address and returns its normal form, for storing and sending,
// and the key under which it is indexed (see the package comment). Any refusal is
// ErrBadEmail.
func Normalise(s string) (addr, key string, err error) {
	if len(s) == 0 || len(s) > MaxEmailLen || !utf8.ValidString(s) {
		return "", "", ErrBadEmail
	}
	at := strings.LastIndexByte(s, '@')
	if at <= 0 || at == len(s)-1 {
		return "", "", ErrBadEmail
	}
	local, domain := s[:at], s[at+1:]
	if len(local) > 64 || !validLocal(local) {
		return "", "", ErrBadEmail
	}
	ascii, err := idnaProfile.ToASCII(strings.TrimSuffix(domain, "."))
	if err != nil || !validDomain(ascii) {
		return "", "", ErrBadEmail
	}
	addr = local + "@" + strings.ToLower(ascii)
	if len(addr) > MaxEmailLen {
		return "", "", ErrBadEmail
	}
	return addr, strings.ToLower(addr), nil
}

// Mask hides an address for roles that may not see it: the first character of the
// local part and the whole domain stay ("a***@example.org"); anything without a local
// part becomes "***".
func Mask(addr string) string {
	at := strings.LastIndexByte(addr, '@')
	if at < 1 {
		return "***"
	}
	return addr[:1] + "***" + addr[at:]
}

// anyAddress matches anything shaped like an email address, loosely on purpose:
// redaction may hide a little too much, never too little. The local part is a quoted
// string or a run that may hold apostrophes (o'brien, which signups accept); the domain
// a run (IDN included) or a literal in brackets.
var anyAddress = regexp.MustCompile(`(?:"(?:[^"\\\r\n]|\\.)*"|[^\s<>()\[\],;:"]+)@(?:\[[^\]\s]*\]|[^\s<>()\[\],;:"']+)`)

// Redact replaces everything shaped like an email address in s with "<redacted>": for
// text that comes from outside and goes where personal data may not (a relay's reply
// in a log, a queue's reasons, a bounce waiting for the store).
func Redact(s string) string {
	if !strings.Contains(s, "@") {
		return s
	}
	return anyAddress.ReplaceAllString(s, "<redacted>")
}

func validLocal(l string) bool {
	if l[0] == '.' || l[len(l)-1] == '.' || strings.Contains(l, "..") {
		return false
	}
	for i := 0; i < len(l); i++ {
		c := l[i]
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9':
		case strings.IndexByte("!#$%&'*+/=?^_`{|}~-.", c) >= 0:
		default:
			return false
		}
	}
	return true
}

func validDomain(d string) bool {
	if len(d) == 0 || len(d) > 253 {
		return false
	}
	labels := strings.Split(d, ".")
	if len(labels) < 2 {
		return false
	}
	for _, l := range labels {
		if len(l) == 0 || len(l) > 63 || l[0] == '-' || l[len(l)-1] == '-' {
			return false
		}
		for i := 0; i < len(l); i++ {
			c := l[i] | 0x20
			if !(c >= 'a' && c <= 'z' || l[i] >= '0' && l[i] <= '9' || l[i] == '-') {
				return false
			}
		}
	}
	// A top-level domain is never all digits: that would be an IP address.
	tld := labels[len(labels)-1]
	return strings.Trim(tld, "0123456789") != ""
}
