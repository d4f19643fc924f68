package mailer

import (
	"math/rand/v2"
	"net/mail"
	"testing"
)

// TestDotAtomFastPathIsNetMail checks that every address the parser's fast path takes
// is one net/mail parses to itself, with no name, and formats as "<address>"; and that
// the usual hard cases go to net/mail.
func TestDotAtomFastPathIsNetMail(t *testing.T) {
	check := func(v string) {
		t.Helper()
		if !isDotAtomAddr(v) {
			return
		}
		a, err := mail.ParseAddress(v)
		if err != nil {
			t.Fatalf("fast path took %q, which net/mail refuses: %v", v, err)
		}
		if a.Name != "" || a.Address != v || a.String() != "<"+v+">" {
			t.Fatalf("fast path took %q; net/mail: name %q, address %q, field %q", v, a.Name, a.Address, a.String())
		}
		if got, err := parseAddr("To", v); err != nil || got != (address{spec: a.Address, field: a.String()}) {
			t.Fatalf("parseAddr(%q) = %+v, %v; want %+v", v, got, err, a)
		}
	}
	for _, v := range []string{"ana@example.org", "a.b-c+tag@sub.example.co.uk", "x@y", "o'brien@example.ie", "{weird}|~^`@example.org"} {
		if !isDotAtomAddr(v) {
			t.Errorf("%q: want the fast path", v)
		}
		check(v)
	}
	for _, v := range []string{"", "@example.org", "ana@", "ana@@example.org", ".ana@example.org", "ana.@example.org",
		"a..b@example.org", "ana@example..org", "ana@.example.org", "ana@example.org.", "Ana <ana@example.org>", `"a b"@example.org`,
		"ana@[192.0.2.1]", "anä@example.org", "ana@exämple.org", " ana@example.org", "ana@example.org\r\nBcc: x@y", "ana(c)@example.org"} {
		if isDotAtomAddr(v) {
			t.Errorf("%q: took the fast path, want net/mail", v)
		}
	}
	// Random strings over an alphabet with every class of character that matters.
	const alphabet = "ab.@-+_'!#~`{}|^=?/%&*$ \"<>()[],;:\\é"
	r := rand.New(rand.NewPCG(1, 2))
	for range 200_000 {
		b := make([]byte, 1+r.IntN(12))
		for i := range b {
			b[i] = alphabet[r.IntN(len(alphabet))]
		}
		check(string(b))
	}
}

// TestFromIsCachedByValue checks that the cached From follows the value asked for.
func TestFromIsCachedByValue(t *testing.T) {
	for _, v := range []string{"News <news@example.org>", `"Équipe" <team@example.fr>`, "News <news@example.org>", "plain@example.org"} {
		want, err := mail.ParseAddress(v)
		if err != nil {
			t.Fatal(err)
		}
		for range 2 {
			if a, err := parseFrom(v); err != nil || a != (address{spec: want.Address, field: want.String()}) {
				t.Errorf("parseFrom(%q) = %+v, %v; want %+v", v, a, err, *want)
			}
		}
	}
	if _, err := parseFrom("not an address"); err == nil {
		t.Error("a bad From was accepted")
	}
}
