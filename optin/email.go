package optin

import (
	"errors"
	"strings"
	"unicode/utf8"

	"golang.org/x/net/idna"
)

// MaxEmailLen is the longest address accepted (RFC 5321 path limit less the brackets).
const MaxEmailLen = 254

// ErrBadEmail is returned for an address that is not a deliverable mailbox syntax.
var ErrBadEmail = errors.New("not a valid email address")

var idnaProfile = idna.Lookup

// NormaliseEmail checks an address and returns it normalised for sending (domain
// lower-cased and converted from IDN to ASCII, local part kept as typed) and the key
// under which it is indexed (all lower-case), so Ana@Example.org and ana@EXAMPLE.org
// are one person.
//
// Accepted: a dot-atom local part of ASCII letters, digits and !#$%&'*+/=?^_`{|}~-
// (no quoted strings, no comments, no display name) and a domain of at least two
// labels. Anything with spaces, control characters or angle brackets is refused, so an
// address can never smuggle a header into a message.
func NormaliseEmail(s string) (addr, key string, err error) {
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
