package address_test

import (
	"errors"
	"strings"
	"testing"

	"consentmail/preferences/address"
)

// Addresses of exactly 254 and 255 bytes: the longest accepted and one byte more.
var (
	addr254 = strings.Repeat("a", 64) + "@" + strings.Repeat("b", 63) + "." + strings.Repeat("b", 63) + "." + strings.Repeat("b", 57) + ".org"
	addr255 = strings.Repeat("a", 64) + "@" + strings.Repeat("b", 63) + "." + strings.Repeat("b", 63) + "." + strings.Repeat("b", 58) + ".org"
)

func TestNormalise(t *testing.T) {
	tests := []struct {
		in, addr, key string // addr "" means refused
	}{
		{"ana@example.org", "ana@example.org", "ana@example.org"},
		{"Ana@Example.ORG", "Ana@example.org", "ana@example.org"},
		{"ana@bücher.example", "ana@xn--bcher-kva.example", "ana@xn--bcher-kva.example"},
		{"ANA@BÜCHER.EXAMPLE", "ANA@xn--bcher-kva.example", "ana@xn--bcher-kva.example"},
		{"ana@xn--bcher-kva.example", "ana@xn--bcher-kva.example", "ana@xn--bcher-kva.example"},
		{"ana@münchen.de", "ana@xn--mnchen-3ya.de", "ana@xn--mnchen-3ya.de"},
		{"ana@例え.テスト", "ana@xn--r8jz45g.xn--zckzah", "ana@xn--r8jz45g.xn--zckzah"},
		{"ana@example.org.", "ana@example.org", "ana@example.org"},
		{"a.b-c+tag@sub.example.co.uk", "a.b-c+tag@sub.example.co.uk", "a.b-c+tag@sub.example.co.uk"},
		{"!#$%&'*+/=?^_`{|}~-@example.org", "!#$%&'*+/=?^_`{|}~-@example.org", "!#$%&'*+/=?^_`{|}~-@example.org"},
		{"ana@1example.org", "ana@1example.org", "ana@1example.org"},
		{"ana@example.c0m", "ana@example.c0m", "ana@example.c0m"},
		{"ana@a-b.example", "ana@a-b.example", "ana@a-b.example"},
		{addr254, addr254, addr254},
		{strings.Repeat("a", 64) + "@example.org", strings.Repeat("a", 64) + "@example.org", strings.Repeat("a", 64) + "@example.org"},

		{in: ""},
		{in: "ana"},
		{in: "ana.example.org"},
		{in: "ana@b@example.org"},
		{in: " ana@example.org"},
		{in: "ana@example.org "},
		{in: "ana maria@example.org"},
		{in: "ana@exa mple.org"},
		{in: ".ana@example.org"},
		{in: "ana.@example.org"},
		{in: "an..a@example.org"},
		{in: "ana@example..org"},
		{in: "ana@.example.org"},
		{in: "ana@example.org.."},
		{in: "ana@localhost"},
		{in: "ana@example"},
		{in: "ana@example.123"},
		{in: "ana@192.0.2.1"},
		{in: "ana@[192.0.2.1]"},
		{in: `"ana"@example.org`},
		{in: `"ana maria"@example.org`},
		{in: "Ana <ana@example.org>"},
		{in: "<ana@example.org>"},
		{in: "ana@example.org (Ana)"},
		{in: "ana@example.org,bob@example.org"},
		{in: "ana,bob@example.org"},
		{in: "@example.org"},
		{in: "ana@"},
		{in: "ana@-example.org"},
		{in: "ana@example-.org"},
		{in: "ana@ex_ample.org"},
		{in: "anä@example.org"},
		{in: "ana\r\n@example.org"},
		{in: "a@b.org\r\nBcc: x@y.org"},
		{in: "ana@example.org\r\n"},
		{in: "ana\x00@example.org"},
		{in: "ana@exa\xffmple.org"}, // invalid UTF-8 must not become a punycode of U+FFFD
		{in: "ana@\xbf.org"},
		{in: "ana@exa\ufffdmple.org"},
		{in: strings.Repeat("a", 65) + "@example.org"},
		{in: addr255},
		{in: "ana@" + strings.Repeat("b", 64) + ".org"},
	}
	for _, tc := range tests {
		t.Run(tc.in, func(t *testing.T) {
			addr, key, err := address.Normalise(tc.in)
			if tc.addr == "" {
				if !errors.Is(err, address.ErrBadEmail) {
					t.Errorf("Normalise(%q): got (%q, %q, %v), want ErrBadEmail", tc.in, addr, key, err)
				}
				return
			}
			if err != nil || addr != tc.addr || key != tc.key {
				t.Errorf("Normalise(%q): got (%q, %q, %v), want (%q, %q, nil)", tc.in, addr, key, err, tc.addr, tc.key)
			}
		})
	}
}

func FuzzNormalise(f *testing.F) {
	for _, s := range []string{
		"ana@example.org", "Ana@EXAMPLE.org", "ana@bücher.example", "ana@xn--bcher-kva.example",
		"ana@例え.テスト", "ana@example.org.", "Ana <ana@example.org>", `"ana"@example.org`,
		"a@b.org\r\nBcc: x@y.org", "ana@example.123", "ana@192.0.2.1", "an..a@example.org",
		"ana@example.org,bob@example.org", "ana@EXAMPLE.ORG。", "ana@ＥＸＡＭＰＬＥ.org", "ana@ß.example",
		"ana@xn--zca.example", "ana@xn--.example", "ana@xn--a.example", "ana@a\u200d.example", "ana@ｅxample.org",
		"!#$%&'*+/=?^_`{|}~-@example.org", addr254, addr255,
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		addr, key, err := address.Normalise(s)
		if err != nil {
			if !errors.Is(err, address.ErrBadEmail) {
				t.Fatalf("Normalise(%q): error %v is not ErrBadEmail", s, err)
			}
			return
		}
		for _, out := range []string{addr, key} {
			if i := strings.IndexAny(out, "\r\n <>,\x00\t"); i >= 0 {
				t.Fatalf("Normalise(%q) = %q: contains %q", s, out, out[i])
			}
		}
		if len(addr) > address.MaxEmailLen {
			t.Fatalf("Normalise(%q) = %q: %d bytes, want ≤ %d", s, addr, len(addr), address.MaxEmailLen)
		}
		if strings.Count(addr, "@") != 1 {
			t.Fatalf("Normalise(%q) = %q: want exactly one @", s, addr)
		}
		if key != strings.ToLower(addr) {
			t.Fatalf("Normalise(%q): key %q, want the lower-case address %q", s, key, strings.ToLower(addr))
		}
		addr2, key2, err := address.Normalise(addr)
		if err != nil || addr2 != addr || key2 != key {
			t.Fatalf("Normalise(Normalise(%q) = %q): got (%q, %q, %v), want (%q, %q, nil)", s, addr, addr2, key2, err, addr, key)
		}
	})
}

func TestMask(t *testing.T) {
	tests := []struct{ in, want string }{
		{"ana@example.org", "a***@example.org"},
		{"Ana.Person@xn--bcher-kva.example", "A***@xn--bcher-kva.example"},
		{"a@example.org", "a***@example.org"},
		{"a@b@example.org", "a***@example.org"},
		{"@example.org", "***"},
		{"ana", "***"},
		{"", "***"},
	}
	for _, tc := range tests {
		if got := address.Mask(tc.in); got != tc.want {
			t.Errorf("Mask(%q): got %q, want %q", tc.in, got, tc.want)
		}
	}
}

// Redact hides every address in a relay's reply, whole, whatever its form, and leaves
// the rest of the text.
func TestRedact(t *testing.T) {
	for in, want := range map[string]string{
		"mailer: permanent failure (550): 5.1.1 <ana.person@example.org>: user unknown":  "mailer: permanent failure (550): 5.1.1 <<redacted>>: user unknown",
		`smtptest: rejected "bob+news@xn--bcher-kva.example"`:                            `smtptest: rejected "<redacted>"`,
		"RCPT TO:ana@bücher.example, then x@y.org":                                       "RCPT TO:<redacted>, then <redacted>",
		"dial tcp 127.0.0.1:25: connection refused":                                      "dial tcp 127.0.0.1:25: connection refused",
		"550 5.1.1 <mary.o'brien@example.org>: Recipient address rejected":               "550 5.1.1 <<redacted>>: Recipient address rejected",
		`550 5.1.1 "john doe"@example.org and user@[192.0.2.1] unknown`:                  "550 5.1.1 <redacted> and <redacted> unknown",
		"550 5.1.10 RESOLVER.ADR.RecipientNotFound; Recipient ana@example.org not found": "550 5.1.10 RESOLVER.ADR.RecipientNotFound; Recipient <redacted> not found",
	} {
		if got := address.Redact(in); got != want {
			t.Errorf("Redact(%q) = %q, want %q", in, got, want)
		}
	}
}
